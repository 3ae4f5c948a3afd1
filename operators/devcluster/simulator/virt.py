"""KubeVirt's runtime, simulated: VirtualMachines get VirtualMachineInstances that "run".

Stands in for virt-controller and virt-handler: creates and deletes the VMI as the run
strategy asks, reports it Running on a simulated node with addresses, mirrors it into the
VM's status, and honours the simulator's pause and fail-schedule annotations.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import logging
import threading
from collections.abc import Iterator

from operators.devcluster.simulator.common import (
    FAIL_SCHEDULE,
    NODE_NAME,
    PAUSED,
    annotation,
    condition,
    conditions,
    find_condition,
    first_annotation,
    now,
    status_patch,
)
from operators.devcluster.simulator.engine import Context, Source, log_transition
from operators.devcluster.simulator.kube import (
    DATA_VOLUME,
    NAMESPACE,
    VM,
    VMI,
    Obj,
    controller_of,
    meta,
    owner_ref,
)
from operators.devcluster.simulator.workqueue import Key

log = logging.getLogger(__name__)

POD_NETWORK = "10.244.0.0/16"
MULTUS_NETWORK = "10.245.0.0/16"
RUNNING_STRATEGIES = frozenset({"Always", "RerunOnFailure", "Once"})
DEFAULT_UNSCHEDULABLE = "0/1 nodes are available: 1 Insufficient memory."
# What KubeVirt reports while the launcher pod's unpaused readiness gate is False.
PAUSED_NOT_READY = (
    'The status of pod readiness gate "kubevirt.io/virtual-machine-unpaused" is not "True", '
    "but False"
)


class AddressPool:
    """Addresses of one network, each handed to one (VMI uid, interface) for good."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        self._free: Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address] = self.network.hosts()
        next(self._free)  # the first host is the gateway's
        self._owners: dict[tuple[str, str], str] = {}
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def __contains__(self, address: object) -> bool:
        try:
            return ipaddress.ip_address(str(address)) in self.network
        except ValueError:
            return False

    def reserve(self, owner: tuple[str, str], address: str) -> None:
        """Record an address found in use (a VMI from before this simulator started)."""
        if address in self:
            with self._lock:
                self._used.add(address)
                self._owners.setdefault(owner, address)

    def address(self, owner: tuple[str, str]) -> str:
        with self._lock:
            if owner in self._owners:
                return self._owners[owner]
            for candidate in self._free:
                if str(candidate) not in self._used:
                    self._used.add(str(candidate))
                    self._owners[owner] = str(candidate)
                    return str(candidate)
        raise RuntimeError(f"no free address left in {self.network}")


def wants_running(spec: Obj) -> bool | None:
    """True: should run; False: should not; None (Manual): leave the VMI as it is."""
    strategy = spec.get("runStrategy")
    if strategy is None:
        return bool(spec.get("running"))  # the deprecated boolean
    if strategy in RUNNING_STRATEGIES:
        return True
    return None if strategy == "Manual" else False


class VirtualMachines:
    """The reconciler of kubevirt.io/v1 VirtualMachines (key kind "vm")."""

    kind = "vm"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pod_pool = AddressPool(POD_NETWORK)
        self.multus_pool = AddressPool(MULTUS_NETWORK)

    def sources(self) -> list[Source]:
        return [
            Source(VM, lambda vm: [Key(self.kind, meta(vm)["namespace"], meta(vm)["name"])]),
            Source(VMI, self._vmi_keys),
            Source(DATA_VOLUME, self._owner_keys),
        ]

    def reconcile(self, key: Key) -> float | None:
        kube = self.ctx.kube
        vm = kube.get(VM, key.name, key.namespace)
        if vm is None or meta(vm).get("deletionTimestamp"):
            self.ctx.timers.forget(key)  # the garbage collector removes the VMI
            return None
        vmi = kube.get(VMI, key.name, key.namespace)
        if vmi is not None and (controller_of(vmi) or {}).get("uid") != meta(vm)["uid"]:
            log.warning("%s: its VMI is not controlled by it; leaving both alone", key)
            return None
        want = wants_running(vm.get("spec") or {})
        if vmi is None and want:
            provisioning = self._provision(key, vm)
            if provisioning:
                self._update_vm(key, vm, None, want, provisioning)
                return None  # the DataVolumes' events bring us back
            return self._start(key, vm)
        self.ctx.timers.clear(key, "start")
        if vmi is not None and not meta(vmi).get("deletionTimestamp"):
            if want is False:
                kube.delete(VMI, key.name, key.namespace, uid=meta(vmi)["uid"])
                log.info("%s: stopping, deleted its VMI", key)
                return None
            if self._update_vmi(key, vm, vmi):
                return None  # the VMI's event brings us back for the VM's status
        self._update_vm(key, vm, vmi, want)
        return None

    # -- steps

    def _start(self, key: Key, vm: Obj) -> float | None:
        remaining = self.ctx.timers.remaining(key, "start", self.ctx.delays.vm_start)
        if remaining > 0:
            self._update_vm(key, vm, None, True)
            return remaining
        self.ctx.kube.create(VMI, _vmi_for(vm), key.namespace)
        self.ctx.timers.clear(key, "start")
        log.info("%s: created its VMI", key)
        return None

    def _provision(self, key: Key, vm: Obj) -> str | None:
        """Create the VM's DataVolumes from its dataVolumeTemplates, as virt-controller
        does; return the VM's printableStatus while they are not ready to boot from."""
        for template in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
            template_meta = template.get("metadata") or {}
            name = template_meta["name"]
            dv = self.ctx.kube.get(DATA_VOLUME, name, key.namespace)
            if dv is None:
                body = {
                    "apiVersion": DATA_VOLUME.api_version,
                    "kind": DATA_VOLUME.kind,
                    "metadata": {
                        **{
                            k: v for k, v in template_meta.items() if k in ("labels", "annotations")
                        },
                        "name": name,
                        "ownerReferences": [owner_ref(vm, VM)],
                    },
                    "spec": copy.deepcopy(template.get("spec") or {}),
                }
                self.ctx.kube.create(DATA_VOLUME, body, key.namespace)
                log.info("%s: created DataVolume %s from its template", key, name)
                return "Provisioning"
            phase = (dv.get("status") or {}).get("phase")
            if phase == "Failed":
                return "DataVolumeError"
            if phase != "Succeeded":
                return "Provisioning"
        return None

    def _owner_keys(self, obj: Obj) -> list[Key]:
        owner = controller_of(obj)
        if owner and owner.get("kind") == "VirtualMachine":
            return [Key(self.kind, meta(obj)["namespace"], owner["name"])]
        return []

    def _update_vmi(self, key: Key, vm: Obj, vmi: Obj) -> bool:
        namespace = self.ctx.kube.get(NAMESPACE, key.namespace)
        status = vmi.get("status") or {}
        unschedulable = first_annotation(FAIL_SCHEDULE, vm, namespace)
        # A VMI that already runs stays put: scheduling is over for it.
        if unschedulable is not None and status.get("phase") != "Running":
            desired = _scheduling_status(status, unschedulable or DEFAULT_UNSCHEDULABLE)
        else:
            paused = annotation(vm, PAUSED) == "true"
            desired = self._running_status(vmi, paused)
        patch = status_patch(status, desired)
        if not patch:
            return False
        self.ctx.kube.patch(VMI, key.name, {"status": patch}, key.namespace)
        log_transition(log, f"{key} VMI phase", status.get("phase"), _describe(desired))
        return True

    def _update_vm(
        self,
        key: Key,
        vm: Obj,
        vmi: Obj | None,
        want: bool | None,
        printable: str | None = None,
    ) -> None:
        current = vm.get("status") or {}
        desired = _vm_status(vm, vmi, want)
        if printable is not None:
            desired["printableStatus"] = printable
        patch = status_patch(current, desired)
        if patch:
            self.ctx.kube.patch_status(VM, key.name, patch, key.namespace)
            if "printableStatus" in patch:
                log_transition(
                    log, str(key), current.get("printableStatus"), desired["printableStatus"]
                )

    # -- the VMI's status

    def _running_status(self, vmi: Obj, paused: bool) -> Obj:
        status = vmi.get("status") or {}
        stamp = now()
        wanted = [
            condition(
                "Ready",
                not paused,
                "" if not paused else "PodNotReady",
                PAUSED_NOT_READY if paused else "",
            ),
        ]
        if paused:
            wanted.append(condition("Paused", True, "PausedByUser", "VMI was paused by user"))
        return {
            "phase": "Running",
            "reason": None,
            "nodeName": NODE_NAME,
            "interfaces": self._interfaces(vmi),
            "conditions": conditions(status.get("conditions"), wanted, stamp),
            "phaseTransitionTimestamps": _phase_times(status, "Running", stamp),
        }

    def _interfaces(self, vmi: Obj) -> list[Obj]:
        spec = vmi.get("spec") or {}
        uid = meta(vmi)["uid"]
        known = {i.get("name"): i for i in (vmi.get("status") or {}).get("interfaces") or []}
        networks = {n.get("name"): n for n in spec.get("networks") or []}
        devices = (spec.get("domain") or {}).get("devices") or {}
        interfaces = devices.get("interfaces") or []
        if not interfaces and devices.get("autoattachPodInterface", True):
            interfaces = [{"name": "default"}]  # what KubeVirt's defaulting adds
        result = []
        for index, interface in enumerate(interfaces):
            name = interface.get("name") or f"nic{index}"
            pool = self.multus_pool if "multus" in networks.get(name, {}) else self.pod_pool
            old = known.get(name) or {}
            address = old.get("ipAddress")
            if address not in pool:
                address = pool.address((uid, name))
            result.append(
                {
                    "name": name,
                    "interfaceName": f"eth{index}",
                    "ipAddress": address,
                    "ipAddresses": [address],
                    "mac": interface.get("macAddress") or old.get("mac") or _mac(uid, name),
                    "infoSource": "domain, guest-agent",
                    "queueCount": 1,
                }
            )
        return result

    def _vmi_keys(self, vmi: Obj) -> list[Key]:
        # Every VMI seen, deleted ones too, holds on to its addresses: never hand them out twice.
        uid = meta(vmi).get("uid", "")
        for interface in (vmi.get("status") or {}).get("interfaces") or []:
            for pool in (self.pod_pool, self.multus_pool):
                pool.reserve((uid, interface.get("name", "")), interface.get("ipAddress", ""))
        owner = controller_of(vmi)
        name = owner["name"] if owner and owner.get("kind") == "VirtualMachine" else None
        return [Key(self.kind, meta(vmi)["namespace"], name or meta(vmi)["name"])]


def _vmi_for(vm: Obj) -> Obj:
    """The VMI virt-controller would create from the VM's template."""
    template = (vm.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    metadata: Obj = {
        "name": meta(vm)["name"],
        "namespace": meta(vm)["namespace"],
        "ownerReferences": [owner_ref(vm, VM)],
    }
    for field in ("labels", "annotations"):
        if template_meta.get(field):
            metadata[field] = dict(template_meta[field])
    return {"metadata": metadata, "spec": copy.deepcopy(template.get("spec") or {})}


def _scheduling_status(status: Obj, message: str) -> Obj:
    stamp = now()
    wanted = [
        condition("Ready", False, "Unschedulable", message),
        condition("PodScheduled", False, "Unschedulable", message),
    ]
    return {
        "phase": "Scheduling",
        "reason": None,
        "nodeName": None,
        "interfaces": None,
        "conditions": conditions(status.get("conditions"), wanted, stamp),
        "phaseTransitionTimestamps": _phase_times(status, "Scheduling", stamp),
    }


def _vm_status(vm: Obj, vmi: Obj | None, want: bool | None) -> Obj:
    generation = meta(vm).get("generation")
    current = vm.get("status") or {}
    if vmi is None:
        printable = "Starting" if want else "Stopped"
        wanted = [condition("Ready", False, "VMINotExists", "VMI does not exist")]
        ready = False
    else:
        vmi_status = vmi.get("status") or {}
        printable = _printable(vmi)
        # The VM's conditions mirror its VMI's, as virt-controller's do.
        wanted = [
            condition(
                c["type"], c.get("status") == "True", c.get("reason", ""), c.get("message", "")
            )
            for c in vmi_status.get("conditions") or []
        ]
        ready = (find_condition(vmi_status, "Ready") or {}).get("status") == "True"
    return {
        "observedGeneration": generation,
        "desiredGeneration": generation,
        "printableStatus": printable,
        "created": vmi is not None,
        "ready": ready,
        "conditions": conditions(current.get("conditions"), wanted, now()),
    }


def _printable(vmi: Obj) -> str:
    status = vmi.get("status") or {}
    if meta(vmi).get("deletionTimestamp"):
        return "Stopping"
    scheduled = find_condition(status, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        return "ErrorUnschedulable"
    if status.get("phase") == "Running":
        paused = find_condition(status, "Paused")
        return "Paused" if paused and paused.get("status") == "True" else "Running"
    return "Starting"


def _phase_times(status: Obj, phase: str, stamp: str) -> list[Obj]:
    times = list(status.get("phaseTransitionTimestamps") or [])
    if not times or times[-1].get("phase") != phase:
        times.append({"phase": phase, "phaseTransitionTimestamp": stamp})
    return times


def _mac(uid: str, interface: str) -> str:
    """A stable, locally administered unicast MAC for the interface."""
    digest = hashlib.sha256(f"{uid}/{interface}".encode()).digest()[:5]
    return ":".join(f"{b:02x}" for b in (0x02, *digest))


def _describe(status: Obj) -> str:
    paused = find_condition(status, "Paused")
    return f"{status.get('phase')}{' (paused)' if paused else ''}"
