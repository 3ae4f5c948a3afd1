"""Nova's view of a server, read from its VirtualMachine and VirtualMachineInstance. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from operators.common.status import Reason
from operators.compute.api import InstanceSpec


@dataclass(frozen=True)
class Observed:
    phase: str
    ready: tuple[bool, Reason, str]
    power: str | None = None
    host: str | None = None
    launched_at: str | None = None
    addresses: list[dict[str, str]] = field(default_factory=list)


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


def addresses(vmi: dict[str, Any]) -> list[dict[str, str]]:
    """Per-network addresses; the pod network's interface is `default`, shown as `pod`."""
    found = []
    for interface in (vmi.get("status") or {}).get("interfaces") or []:
        name = interface.get("name", "")
        entry = {"network": "pod" if name == "default" else name, "interface": name}
        if interface.get("ipAddress"):
            entry["ip"] = interface["ipAddress"]
        if interface.get("mac"):
            entry["mac"] = interface["mac"]
        found.append(entry)
    return found


def with_allocated(found: list[dict[str, str]], nics: list[Any]) -> list[dict[str, str]]:
    """The VMI's addresses completed with what ostack allocated: a bridge interface's
    address is known from its allocation before (and without) a guest agent reporting it,
    and the pod interface is named after the pod-type Network the Instance is on."""
    by_interface = {entry["interface"]: dict(entry) for entry in found}
    for nic in nics:
        if nic.type == "pod":
            if "default" in by_interface:
                by_interface["default"]["network"] = nic.name
        elif nic.address:
            # ostack is the allocator: its address is the interface's, whatever a guest
            # agent may report before cloud-init has configured it.
            entry = by_interface.setdefault(nic.name, {"network": nic.name, "interface": nic.name})
            entry["ip"] = nic.address
    order = ["default", *(n.name for n in nics if n.type != "pod")]
    return sorted(
        by_interface.values(),
        key=lambda e: order.index(e["interface"]) if e["interface"] in order else len(order),
    )


def launched_at(vmi: dict[str, Any]) -> str | None:
    stamps = (vmi.get("status") or {}).get("phaseTransitionTimestamps") or []
    running = [s.get("phaseTransitionTimestamp") for s in stamps if s.get("phase") == "Running"]
    return running[-1] if running else vmi["metadata"].get("creationTimestamp")


def paused(vmi: dict[str, Any]) -> bool:
    return _condition(vmi, "Paused").get("status") == "True"


def _error(vm: dict[str, Any], vmi: dict[str, Any] | None) -> str | None:
    printable = (vm.get("status") or {}).get("printableStatus", "")
    if not printable.startswith("Error") and printable not in (
        "CrashLoopBackOff",
        "DataVolumeError",
    ):
        return None
    scheduled = _condition(vmi, "PodScheduled")
    detail = scheduled.get("message") or _condition(vm, "Failure").get("message") or ""
    return f"{printable}: {detail}".rstrip(": ")


def observe(
    spec: InstanceSpec,
    vm: dict[str, Any] | None,
    vmi: dict[str, Any] | None,
    rebooting: bool,
    resizing: bool = False,
    rebuilding: bool = False,
) -> Observed:
    """Nova's status for what KubeVirt reports."""
    if vm is None:
        return Observed("BUILD", (False, Reason.PROGRESSING, "creating the VirtualMachine"))
    error = _error(vm, vmi)
    if error:
        # KubeVirt keeps trying (scheduling, pulling), so this is not final.
        return Observed("ERROR", (False, Reason.TRANSIENT_ERROR, error), "NoState")
    running = vmi is not None and (vmi.get("status") or {}).get("phase") == "Running"
    if rebuilding:
        return Observed("REBUILD", (False, Reason.PROGRESSING, "re-creating the root disk"))
    if spec.shelved or spec.power_state == "Stopped":
        phase = "SHELVED_OFFLOADED" if spec.shelved else "SHUTOFF"
        if vmi is None:
            return Observed(phase, (True, Reason.SUCCEEDED, "stopped as asked"), "Shutdown")
        return Observed(phase, (False, Reason.PROGRESSING, "stopping"), "Running")
    if not running:
        phase = "RESIZE" if resizing else "REBOOT" if rebooting else "BUILD"
        return Observed(phase, (False, Reason.PROGRESSING, "starting the VirtualMachine"))
    assert vmi is not None
    found = {
        "host": (vmi.get("status") or {}).get("nodeName"),
        "launched_at": launched_at(vmi),
        "addresses": addresses(vmi),
    }
    if paused(vmi):
        ready = spec.power_state == "Paused"
        return Observed(
            "PAUSED",
            (ready, Reason.SUCCEEDED if ready else Reason.PROGRESSING, "paused"),
            "Paused",
            **found,
        )
    if spec.power_state == "Paused":
        return Observed("ACTIVE", (False, Reason.PROGRESSING, "pausing"), "Running", **found)
    return Observed("ACTIVE", (True, Reason.SUCCEEDED, "running"), "Running", **found)
