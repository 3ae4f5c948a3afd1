"""Nova as a kopf controller: Instances become KubeVirt VirtualMachines with a cloud-init
Secret; status follows the VM and its VMI through watches."""

from __future__ import annotations

import base64
import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from operators.blockstorage.api import VOLUME
from operators.common import children, handlers, kube, metrics, tenancy
from operators.common.conditions import is_subset, set_condition
from operators.common.kinds import VERSION
from operators.common.schema import quantity_value
from operators.common.status import Reason
from operators.compute import builders, lifecycle
from operators.compute.api import INSTANCE, InstanceSpec
from operators.compute.flavors import DISK_ANNOTATION
from operators.image import lifecycle as image_lifecycle
from operators.image.api import IMAGE
from operators.image.builders import object_name as image_object
from operators.network import allocations, ipam
from operators.network.api import IP_ALLOCATION, NETWORK, SECURITY_GROUP

log = logging.getLogger(__name__)
MANAGER = "ostack-compute"
INSTANCES_METER = metrics.Usage(
    "ostack_project_instances", "Instances per Project and phase.", ("project", "phase")
)
VCPUS_METER = metrics.Usage("ostack_project_vcpus", "vCPUs of a Project's Instances.", ("project",))
RAM_METER = metrics.Usage(
    "ostack_project_ram_bytes", "RAM of a Project's Instances, in bytes.", ("project",)
)
INSTANCES = (INSTANCE.group, VERSION, INSTANCE.plural)
INSTANCETYPES = ("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterinstancetypes")
VMS = ("kubevirt.io", "v1", "virtualmachines")
VMIS = ("kubevirt.io", "v1", "virtualmachineinstances")
OWNED = {children.MANAGED_BY: children.MANAGER, children.OWNER_KIND: INSTANCE.kind}


class Refused(Exception):
    """The spec cannot be met as written: the user must change it."""


class Waiting(Exception):
    """Something the Instance needs is not ready yet; its change will bring us back."""


# --- indexes ---------------------------------------------------------------------------------


@kopf.index(*INSTANCETYPES)
def flavor_sizes(name: str, spec: kopf.Spec, annotations: kopf.Annotations, **_: Any):
    try:
        cpu, memory = int(spec["cpu"]["guest"]), quantity_value(spec["memory"]["guest"])
    except (KeyError, TypeError, ValueError):
        return {}
    disk = annotations.get(DISK_ANNOTATION)
    return {name: builders.Size(cpu, memory, quantity_value(disk) if disk else None, name)}


@kopf.index(*INSTANCES)
def instances_by_volume(namespace: str, name: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any):
    created = meta.get("creationTimestamp", "")
    refs = [*(spec.get("volumes") or []), *([spec["bootVolume"]] if spec.get("bootVolume") else [])]
    return {(namespace, ref["name"]): (created, name) for ref in refs}


@kopf.index(IP_ALLOCATION.group, VERSION, IP_ALLOCATION.plural)
def allocations_held(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    """The addresses each Instance (by uid) holds, wherever the Network is."""
    return {spec["holder"]["uid"]: (namespace, spec["network"], name)}


@kopf.index("", "v1", "services", labels=OWNED)
def floating_services(namespace: str, name: str, **_: Any):
    return {(namespace, name): True}


@kopf.index(*INSTANCES)
def instances_by_group(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    return {(namespace, group): name for group in spec.get("securityGroups") or ["default"]}


@kopf.index(*INSTANCES)
def instances_by_image(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    image = spec.get("image")
    if not image:
        return {}
    return {(image.get("project"), image["name"]): (namespace, name)}


# --- resolving what an Instance refers to ----------------------------------------------------


def _size(spec: InstanceSpec, indexes: dict[str, Any]) -> builders.Size:
    if spec.resources is not None:
        return builders.Size(spec.resources.cpu, quantity_value(spec.resources.memory))
    size = tenancy.first(indexes["flavor_sizes"], spec.flavor)
    if size is None:
        known = ", ".join(sorted(indexes["flavor_sizes"].keys())) or "none"
        raise Refused(f"flavor {spec.flavor} does not exist (flavors: {known})")
    return size


def _boot(
    spec: InstanceSpec, namespace: str, name: str, project: str, size, indexes
) -> builders.Boot:
    if spec.boot_volume is not None:
        volume = kube.read(VOLUME.api_version, VOLUME.kind, spec.boot_volume.name, namespace)
        if volume is None:
            raise Refused(f"boot Volume {spec.boot_volume.name} does not exist")
        pvc = (volume.get("status") or {}).get("pvc")
        if not pvc:
            raise Waiting(f"waiting for Volume {spec.boot_volume.name} to be available")
        return builders.Boot(volume_pvc=pvc)
    assert spec.image is not None
    image_project = spec.image.project or project
    image_ns = tenancy.first(indexes["namespace_by_project"], image_project) or image_project
    image = kube.read(IMAGE.api_version, IMAGE.kind, spec.image.name, image_ns)
    if image is None:
        booted = _booted_from(namespace, name, spec)
        if booted is not None:
            return booted  # the root disk is the Instance's own copy: the image may go
        raise Refused(f"Image {spec.image.name} does not exist in Project {image_project}")
    image_spec = IMAGE.parse_spec(image)
    refusal = image_lifecycle.refusal(image_spec, spec.image.name, image_project, project)
    if refusal:
        raise Refused(refusal)
    if image_spec.min_ram and size.memory < quantity_value(image_spec.min_ram):
        raise Refused(
            f"Image {spec.image.name} needs at least {image_spec.min_ram} of RAM; the flavor"
            " has less: choose a larger flavor"
        )
    min_disk = quantity_value(image_spec.min_disk) if image_spec.min_disk else None
    if spec.root_disk_size and min_disk and quantity_value(spec.root_disk_size) < min_disk:
        raise Refused(
            f"rootDiskSize {spec.root_disk_size} is below Image {spec.image.name}'s minDisk"
            f" {image_spec.min_disk}"
        )
    status = image.get("status") or {}
    if status.get("phase") != "active":
        raise Waiting(f"waiting for Image {spec.image.name} to be active")
    preference, preference_spec = status.get("preference"), None
    if preference and image_ns != namespace:
        source = kube.read(
            "instancetype.kubevirt.io/v1beta1", "VirtualMachinePreference", preference, image_ns
        )
        preference_spec = (source or {}).get("spec")
        preference = f"{name}-image-preference" if preference_spec else None
    return builders.Boot(
        image_namespace=image_ns,
        image_name=image_object(image),
        preference=preference,
        min_disk=min_disk,
        preference_spec=preference_spec,
    )


def _booted_from(namespace: str, name: str, spec: InstanceSpec) -> builders.Boot | None:
    """How an Instance whose root disk was already cloned from its (now gone) Image boots:
    as before, from the VM's own template, so nothing about the VM changes."""
    vm = kube.read("kubevirt.io/v1", "VirtualMachine", name, namespace)
    templates = ((vm or {}).get("spec") or {}).get("dataVolumeTemplates") or []
    if not templates or spec.image is None:
        return None
    template = templates[0]["spec"]
    source = template.get("sourceRef") or {}
    if source.get("name") != f"image-{spec.image.name}":
        return None
    requested = template["storage"]["resources"]["requests"]["storage"]
    return builders.Boot(
        image_namespace=source.get("namespace"),
        image_name=source["name"],
        preference=((vm["spec"].get("preference") or {}).get("name")),
        min_disk=quantity_value(requested),
    )


def _nics(
    instance: dict[str, Any], spec: InstanceSpec, project: str, indexes
) -> list[builders.Nic]:
    """The Networks the Instance is on, each with its address where ostack allocates
    one; addresses on Networks the Instance has left are given back."""
    namespace = instance["metadata"]["namespace"]
    nics, pod_networks = [], []
    for ref in spec.networks:
        ref_project = ref.project or project
        ns = tenancy.first(indexes["namespace_by_project"], ref_project) or ref_project
        network = kube.read(NETWORK.api_version, NETWORK.kind, ref.name, ns)
        if network is None:
            raise Refused(f"Network {ref.name} does not exist in Project {ref_project}")
        if ns != namespace and not network["spec"].get("shared"):
            raise Refused(f"Network {ref.name} of Project {ref_project} is not shared")
        net_spec = NETWORK.parse_spec(network)
        if net_spec.type == "pod":
            pod_networks.append(ref.name)
            if ref.fixed_ip is not None:
                raise Refused(
                    f"Network {ref.name} is a pod network, whose addresses the cluster's CNI"
                    " assigns; fixedIP is for bridge and vlan Networks"
                )
            nics.append(builders.Nic(ref.name, "pod", ns, ref_project, external=net_spec.external))
            continue
        nics.append(_addressed_nic(instance, network, ref_project, net_spec, ref.fixed_ip))
    if len(pod_networks) > 1:
        raise Refused(
            f"Networks {', '.join(pod_networks)} are all pod networks, but an Instance has one"
            " pod interface and so is on one of them; connect pod networks with allowFrom"
        )
    _release_left(instance, {(n.namespace, n.name) for n in nics}, indexes)
    return nics


def _addressed_nic(instance, network, project: str, spec, fixed_ip: str | None) -> builders.Nic:
    meta = network["metadata"]
    try:
        address = allocations.claim(network, project, spec, instance, fixed_ip)
    except allocations.AllocationRefused as refusal:
        raise Refused(str(refusal)) from None
    subnet = ipam.subnet_of(spec, address) if address else None
    return builders.Nic(
        meta["name"],
        spec.type,
        meta["namespace"],
        project,
        address,
        int(subnet.cidr.split("/")[1]) if subnet else None,
        tuple(subnet.dns_nameservers) if subnet else (),
        spec.mtu,
    )


def _release_left(instance: dict[str, Any], kept: set[tuple[str, str]], indexes) -> None:
    for namespace, network, allocation in tenancy.all_of(
        indexes["allocations_held"], instance["metadata"]["uid"]
    ):
        if (namespace, network) not in kept:
            kube.delete(IP_ALLOCATION.api_version, IP_ALLOCATION.kind, allocation, namespace)


def _check_groups(spec: InstanceSpec, namespace: str) -> None:
    """Named groups must exist, as Nova refuses unknown ones. The implicit `default` is not
    checked: until the network service has made it, the Instance only has less access."""
    for group in spec.security_groups:
        if kube.read(SECURITY_GROUP.api_version, SECURITY_GROUP.kind, group, namespace) is None:
            raise Refused(f"SecurityGroup {group} does not exist in this Project")


def _attached(
    spec: InstanceSpec, namespace: str, name: str, indexes: dict[str, Any]
) -> list[builders.Attached]:
    """The Volumes to hot-plug; one that is not ready yet is plugged once it is (its
    change brings us back). A Volume that is not multiattach stays with the Instance that
    named it first."""
    attached = []
    for ref in spec.volumes:
        volume = kube.read(VOLUME.api_version, VOLUME.kind, ref.name, namespace)
        if volume is None:
            raise Refused(f"Volume {ref.name} does not exist")
        users = tenancy.all_of(indexes["instances_by_volume"], (namespace, ref.name))
        multiattach = bool(volume["spec"].get("multiattach"))
        holder = users[0][1] if users else name
        if not multiattach and holder != name:
            raise Refused(
                f"Volume {ref.name} is attached to Instance {holder} and is not multiattach;"
                " detach it there first, or use a multiattach Volume"
            )
        claim = (volume.get("status") or {}).get("pvc")
        if claim and (volume.get("status") or {}).get("phase") in ("available", "in-use"):
            attached.append(builders.Attached(ref.name, claim, multiattach))
    return attached


def _user_data(spec: InstanceSpec, namespace: str) -> str | None:
    if spec.user_data_secret is None:
        return spec.user_data
    ref = spec.user_data_secret
    secret = kube.read("v1", "Secret", ref.name, namespace)
    data = (secret or {}).get("data") or {}
    if ref.key not in data:
        raise Refused(f"Secret {ref.name} has no key {ref.key} for the user data")
    return base64.b64decode(data[ref.key]).decode()


def _secret(instance, project, spec: InstanceSpec, namespace: str, plan) -> dict[str, Any]:
    body = builders.cloud_init_secret(
        instance, project, spec.key_pairs, _user_data(spec, namespace), plan
    )
    # Compared with what the server holds, which keeps `data`, never `stringData`.
    body["data"] = {
        k: base64.b64encode(v.encode()).decode() for k, v in body.pop("stringData").items()
    }
    return body


# --- reconciling an Instance -----------------------------------------------------------------


@handlers.reconciler(INSTANCE)
def reconcile_instance(body: kopf.Body, **indexes: Any) -> None:
    reconcile(kube.plain(body), indexes)


def reconcile(instance: dict[str, Any], indexes: dict[str, Any]) -> None:
    namespace, name = instance["metadata"]["namespace"], instance["metadata"]["name"]
    project = tenancy.project_of(namespace, indexes) or namespace
    try:
        spec = INSTANCE.parse_spec(instance)
        size = _size(spec, indexes)
        boot = _boot(spec, namespace, name, project, size, indexes)
        _check_groups(spec, namespace)
        plan = builders.Plan(
            size,
            boot,
            _nics(instance, spec, project, indexes),
            _attached(spec, namespace, name, indexes),
        )
        secret = _secret(instance, project, spec, namespace, plan)
    except (Refused, ValueError) as problem:
        _report(
            instance,
            lifecycle.Observed("ERROR", (False, Reason.INVALID_CONFIGURATION, str(problem))),
        )
        _meter(instance, project, "ERROR")
        return
    except Waiting as wait:
        _report(instance, lifecycle.Observed("BUILD", (False, Reason.PROGRESSING, str(wait))))
        _meter(instance, project, "BUILD")
        return
    kube.apply(secret, MANAGER)
    copied = builders.preference_copy(instance, project, plan.boot)
    if copied is not None:
        kube.apply(copied, MANAGER)
    vmi = kube.read("kubevirt.io/v1", "VirtualMachineInstance", name, namespace)
    rebuilding, rebuilt = _rebuild_step(instance, spec, vmi)
    vm = builders.virtual_machine(instance, project, spec, plan)
    if rebuilding:
        vm["spec"]["runStrategy"] = "Halted"  # the old disk can only go once nothing uses it
    kube.apply(vm, MANAGER)
    floating = _float(instance, project, spec, plan, indexes)
    rebooted = _reboot_if_asked(instance, spec)
    current_vm = kube.read(*_vm_ref(instance))
    vmi = kube.read("kubevirt.io/v1", "VirtualMachineInstance", name, namespace)
    rebooting = _restarting(vmi, rebooted or _status(instance).get("lastRebootAt"))
    rebuilding = rebuilding or _restarting(vmi, rebuilt or _status(instance).get("lastRebuildAt"))
    resizing = _resize_if_needed(instance, size, vmi)
    if resizing:
        vmi = None if vmi is not None and _started_with(vmi) != builders.size_id(size) else vmi
    observed = lifecycle.observe(spec, current_vm, vmi, rebooting, resizing, rebuilding)
    observed = replace(
        observed, addresses=lifecycle.with_allocated(observed.addresses, plan.nics) + floating
    )
    unpausable = _pause_or_unpause(spec, vmi)
    if unpausable:
        observed = replace(observed, ready=(False, Reason.UNRECOVERABLE_ERROR, unpausable))
    _report(instance, observed, size, {"lastRebootAt": rebooted, "lastRebuildAt": rebuilt})
    _meter(instance, project, observed.phase, size)
    log.info("reconciled Instance %s/%s: %s", namespace, name, observed.phase)


def _meter(
    instance: dict[str, Any], project: str, phase: str, size: builders.Size | None = None
) -> None:
    """What the Instance counts for in its Project's usage, as Nova counts a server."""
    where = (instance["metadata"]["namespace"], instance["metadata"]["name"])
    INSTANCES_METER.observe(*where, (project, phase), 1)
    VCPUS_METER.observe(*where, (project,), size.cpu if size else 0)
    RAM_METER.observe(*where, (project,), float(size.memory) if size else 0)


@kopf.on.event(*INSTANCES)
def instance_gone(type: str, namespace: str, name: str, **_: Any) -> None:
    if type == "DELETED":
        for meter in (INSTANCES_METER, VCPUS_METER, RAM_METER):
            meter.forget(namespace, name)


def _float(
    instance: dict[str, Any], project: str, spec: InstanceSpec, plan: builders.Plan, indexes
) -> list[dict[str, Any]]:
    """The floating address of an Instance on an external Network: a LoadBalancer Service
    publishing the ports its groups let in. Returns its address entry once the load
    balancer has one."""
    meta = instance["metadata"]
    external = next((n for n in plan.nics if n.external), None)
    ports: list[tuple[str, int]] = []
    if external is not None:
        for group in spec.security_groups or ["default"]:
            found = kube.read(
                SECURITY_GROUP.api_version, SECURITY_GROUP.kind, group, meta["namespace"]
            )
            if found is not None:
                ports += builders.floating_ports(SECURITY_GROUP.parse_spec(found).rules_)
    if external is None or not ports:
        where = (meta["namespace"], builders.floating_name(instance))
        if tenancy.first(indexes["floating_services"], where):
            kube.delete("v1", "Service", where[1], where[0])
        return []
    service = builders.floating_service(instance, project, external.name, sorted(set(ports)))
    kube.apply(service, MANAGER)
    current = kube.read("v1", "Service", builders.floating_name(instance), meta["namespace"])
    ingress = (((current or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = next((i.get("ip") or i.get("hostname") for i in ingress), None)
    entry = {"network": external.name, "interface": "floating", "floating": True}
    return [{**entry, "ip": address}] if address else [entry]


def _vm_ref(instance: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = instance["metadata"]
    return ("kubevirt.io/v1", "VirtualMachine", meta["name"], meta["namespace"])


def _reboot_if_asked(instance: dict[str, Any], spec: InstanceSpec) -> str | None:
    """Restart the guest for a rebootRequestedAt newer than the last one acted on, as
    KubeVirt's restart does: the VMI goes and the VM starts a new one. Returns the
    request acted on, if any."""
    if spec.reboot_requested_at is None or spec.power_state == "Stopped" or spec.shelved:
        return None
    asked = spec.reboot_requested_at
    last = _status(instance).get("lastRebootAt")
    if last and datetime.fromisoformat(last.replace("Z", "+00:00")) >= asked:
        return None
    meta = instance["metadata"]
    kube.delete("kubevirt.io/v1", "VirtualMachineInstance", meta["name"], meta["namespace"])
    kopf.event(instance, type="Normal", reason="Rebooting", message="the guest is restarted")
    return asked.strftime("%Y-%m-%dT%H:%M:%SZ")


def _started_with(vmi: dict[str, Any]) -> str | None:
    return (vmi["metadata"].get("annotations") or {}).get(builders.SIZE_ANNOTATION)


def _resize_if_needed(
    instance: dict[str, Any], size: builders.Size, vmi: dict[str, Any] | None
) -> bool:
    """A flavor change reaches a running guest through a restart, as Nova's resize does:
    the VMI started with the old size goes, and the new one starts with the new size.
    Returns whether a resize is under way."""
    wanted = builders.size_id(size)
    if vmi is None:
        return (instance.get("status") or {}).get("phase") == "RESIZE"
    started = _started_with(vmi)
    if started is None or started == wanted:
        return False
    meta = vmi["metadata"]
    kube.delete("kubevirt.io/v1", "VirtualMachineInstance", meta["name"], meta["namespace"])
    kopf.event(instance, type="Normal", reason="Resizing", message=f"{started} -> {wanted}")
    return True


def _pause_or_unpause(spec: InstanceSpec, vmi: dict[str, Any] | None) -> str | None:
    """Ask KubeVirt to pause or unpause the running guest, as `virtctl pause` does; returns
    why it cannot be done, if it cannot."""
    if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
        return None
    paused = lifecycle.paused(vmi)
    wanted = spec.power_state == "Paused"
    if paused == wanted:
        return None
    meta = vmi["metadata"]
    action = "pause" if wanted else "unpause"
    path = (
        f"/apis/subresources.kubevirt.io/v1/namespaces/{meta['namespace']}"
        f"/virtualmachineinstances/{meta['name']}/{action}"
    )
    try:
        kube.put(path)
    except ApiException as error:
        if error.status == 404:
            return (
                f"cannot {action}: this cluster does not serve KubeVirt's"
                " subresources.kubevirt.io API (virt-api)"
            )
        raise
    return None


def _status(instance: dict[str, Any]) -> dict[str, Any]:
    return instance.get("status") or {}


def _restarting(vmi: dict[str, Any] | None, since: str | None) -> bool:
    """Whether a restart asked for at `since` (reboot, rebuild) has yet to bring a guest up:
    no VMI, or only one older than the request."""
    if not since:
        return False
    return vmi is None or vmi["metadata"].get("creationTimestamp", "") < since


def _rebuild_step(
    instance: dict[str, Any], spec: InstanceSpec, vmi: dict[str, Any] | None
) -> tuple[bool, str | None]:
    """One step of a rebuild (a `rebuildRequestedAt` newer than the last one acted on):
    halt the guest, delete its root disk, then let the VM run again, which clones the
    image anew into a disk of the same name. Returns (still halting, request acted on)."""
    asked = spec.rebuild_requested_at
    if asked is None or spec.image is None:
        return False, None
    last = _status(instance).get("lastRebuildAt")
    if last and datetime.fromisoformat(last.replace("Z", "+00:00")) >= asked:
        return False, None
    if vmi is not None:
        return True, None  # halting first; the VMI's going brings us back
    meta = instance["metadata"]
    root = builders.root_disk_name(instance)
    if kube.delete("cdi.kubevirt.io/v1beta1", "DataVolume", root, meta["namespace"]):
        kopf.event(instance, type="Normal", reason="Rebuilding", message=f"new root disk {root}")
    return False, asked.strftime("%Y-%m-%dT%H:%M:%SZ")


def _report(
    instance: dict[str, Any],
    observed: lifecycle.Observed,
    size: builders.Size | None = None,
    acted_on: dict[str, str | None] | None = None,
) -> None:
    current = instance.get("status") or {}
    generation = instance["metadata"].get("generation")
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": observed.phase,
        "powerState": observed.power,
        "host": observed.host,
        "addresses": observed.addresses or None,
        "conditions": set_condition(
            current.get("conditions", []), "Ready", *observed.ready, generation=generation
        ),
    }
    if observed.launched_at:
        status["launchedAt"] = observed.launched_at
    if size is not None:
        status["vmName"] = instance["metadata"]["name"]
        status["flavor"] = {
            "name": size.flavor,
            "cpu": size.cpu,
            "memory": _show(size.memory),
        }
    status |= {key: value for key, value in (acted_on or {}).items() if value}
    if is_subset(status, current):
        return
    meta = instance["metadata"]
    kube.patch_status(INSTANCE.api_version, INSTANCE.kind, meta["name"], meta["namespace"], status)
    if observed.phase != current.get("phase"):
        error = observed.phase == "ERROR"
        kopf.event(
            instance,
            type="Warning" if error else "Normal",
            reason=observed.phase.title().replace("_", ""),
            message=observed.ready[2],
        )


def _show(memory: Decimal) -> str:
    from operators.common.schema import bytes_quantity

    return bytes_quantity(memory)


# --- following the VM, its VMI and the Image ---------------------------------------------------


def _reconcile_by_name(namespace: str, name: str, indexes: dict[str, Any]) -> None:
    kube.reconcile_named(INSTANCE.api_version, INSTANCE.kind, namespace, name, reconcile, indexes)


@kopf.on.event(*VMS, labels=OWNED)
@kopf.on.event(*VMIS, labels=OWNED)
@kopf.on.event("", "v1", "services", labels=OWNED)
def runtime_changed(namespace: str, labels: kopf.Labels, **indexes: Any) -> None:
    _reconcile_by_name(namespace, labels[children.OWNER_NAME], indexes)


@kopf.on.event(VOLUME.group, VERSION, VOLUME.plural)
def volume_changed(namespace: str, name: str, **indexes: Any) -> None:
    """A Volume became available (or went): the Instances naming it plug or unplug it."""
    for _, instance in tenancy.all_of(indexes["instances_by_volume"], (namespace, name)):
        _reconcile_by_name(namespace, instance, indexes)


@kopf.on.event(IMAGE.group, VERSION, IMAGE.plural)
def image_changed(namespace: str, name: str, **indexes: Any) -> None:
    """An Image became active (or changed visibility): Instances waiting on it move on."""
    project = tenancy.project_of(namespace, indexes) or namespace
    for key in ((project, name), (None, name)):
        store = indexes["instances_by_image"].get(key)
        for instance_ns, instance in list(store) if store is not None else []:
            if key[0] is None and instance_ns != namespace:
                continue
            try:
                _reconcile_by_name(instance_ns, instance, indexes)
            except ApiException as error:
                log.warning("Instance %s/%s: %s", instance_ns, instance, error.reason)


@kopf.on.event(IP_ALLOCATION.group, VERSION, IP_ALLOCATION.plural)
def allocation_released(type: str, spec: kopf.Spec, **indexes: Any) -> None:
    """An address of an Instance was released behind its back: it takes one again."""
    if type == "DELETED":
        holder = spec["holder"]
        _reconcile_by_name(holder["namespace"], holder["name"], indexes)


_group_generations: dict[tuple[str, str], int] = {}
"""The generation of each SecurityGroup last acted on: status updates (its member count
changes with every VM) must not send every member through a reconcile."""


@kopf.on.event(SECURITY_GROUP.group, VERSION, SECURITY_GROUP.plural)
def group_changed(type: str, namespace: str, name: str, meta: kopf.Meta, **indexes: Any) -> None:
    """A SecurityGroup an Instance was refused for now exists, or its rules (the ports a
    floating address publishes) changed."""
    key, generation = (namespace, name), meta.get("generation", 0)
    seen = _group_generations.get(key)
    _group_generations[key] = generation
    if type is None or (type == "MODIFIED" and seen == generation):
        return  # the initial listing (resuming the Instances covers it), or status only
    if type == "DELETED":
        _group_generations.pop(key, None)
    for instance in tenancy.all_of(indexes["instances_by_group"], (namespace, name)):
        _reconcile_by_name(namespace, instance, indexes)
