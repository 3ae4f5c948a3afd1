"""Quotas counted as OpenStack counts them, from what a Project holds. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from operators.common.schema import bytes_quantity, quantity_value
from operators.identity.api import Quotas

BYTE_QUOTAS = ("ram", "gigabytes")
ORDER = (
    "instances",
    "cores",
    "ram",
    "volumes",
    "gigabytes",
    "snapshots",
    "buckets",
    "networks",
    "images",
)


@dataclass(frozen=True)
class Flavor:
    """vCPUs and memory of a VirtualMachineClusterInstancetype."""

    cpu: int
    memory: Decimal


@dataclass(frozen=True)
class InstanceFootprint:
    """What an Instance counts for: its flavor's name, or inline vCPUs and memory."""

    flavor: str | None = None
    cpu: int | None = None
    memory: Decimal | None = None

    @classmethod
    def of(cls, spec: dict[str, Any]) -> InstanceFootprint:
        resources = spec.get("resources") or {}
        memory = resources.get("memory")
        return cls(
            flavor=spec.get("flavor"),
            cpu=resources.get("cpu"),
            memory=quantity_value(memory) if memory is not None else None,
        )

    def size(self, flavors: dict[str, Flavor]) -> tuple[int, Decimal]:
        """(vCPUs, bytes of RAM); an unknown flavor counts as nothing, since the Instance
        cannot run until its flavor exists (the compute controller says so)."""
        if self.flavor is not None:
            flavor = flavors.get(self.flavor)
            return (flavor.cpu, flavor.memory) if flavor else (0, Decimal(0))
        return self.cpu or 0, self.memory or Decimal(0)


def cluster_nodes(spec: dict[str, Any]) -> list[InstanceFootprint]:
    """A Magnum Cluster's VMs, each counted as an Instance of its flavor, as Magnum counts
    a cluster's servers against Nova's quotas. An autoscaled group counts at its maximum,
    which the autoscaler may reach without asking."""
    control = spec.get("controlPlane") or {}
    nodes = [InstanceFootprint(flavor=control.get("flavor"))] * int(control.get("replicas", 1))
    for group in spec.get("nodeGroups") or []:
        count = group.get("maxReplicas") or group.get("replicas", 0)
        nodes += [InstanceFootprint(flavor=group.get("flavor"))] * int(count)
    return nodes


@dataclass
class Holdings:
    """Everything a Project holds that a quota counts."""

    instances: list[InstanceFootprint] = field(default_factory=list)
    volume_sizes: list[Decimal] = field(default_factory=list)
    snapshot_sizes: list[Decimal] = field(default_factory=list)
    buckets: int = 0
    networks: int = 0
    images: int = 0


def usage(holdings: Holdings, flavors: dict[str, Flavor]) -> dict[str, Decimal]:
    sizes = [i.size(flavors) for i in holdings.instances]
    return {
        "instances": Decimal(len(holdings.instances)),
        "cores": Decimal(sum(cpu for cpu, _ in sizes)),
        "ram": sum((ram for _, ram in sizes), Decimal(0)),
        "volumes": Decimal(len(holdings.volume_sizes)),
        "gigabytes": sum(holdings.volume_sizes + holdings.snapshot_sizes, Decimal(0)),
        "snapshots": Decimal(len(holdings.snapshot_sizes)),
        "buckets": Decimal(holdings.buckets),
        "networks": Decimal(holdings.networks),
        "images": Decimal(holdings.images),
    }


def limits(quotas: Quotas | None) -> dict[str, Decimal]:
    """The set limits only; an unset quota is unlimited."""
    if quotas is None:
        return {}
    return {
        name: quantity_value(value) if name in BYTE_QUOTAS else Decimal(value)
        for name in ORDER
        if (value := getattr(quotas, name)) is not None
    }


def show(name: str, amount: Decimal) -> str:
    """An amount as a user reads it: `40Gi` for bytes, `16` for counts."""
    return bytes_quantity(amount) if name in BYTE_QUOTAS else str(int(amount))


def usage_status(in_use: dict[str, Decimal], limit: dict[str, Decimal]) -> dict[str, Any]:
    """status.quotaUsage: in use and limit per quota, as quantities."""
    return {
        name: {"inUse": show(name, in_use[name])}
        | ({"limit": show(name, limit[name])} if name in limit else {})
        for name in ORDER
    }


def exceeded(
    requested: dict[str, Decimal], in_use: dict[str, Decimal], limit: dict[str, Decimal]
) -> str | None:
    """Nova's refusal for the first quota `requested` would exceed, or None."""
    for name in ORDER:
        wanted = requested.get(name, Decimal(0))
        if wanted > 0 and name in limit and in_use[name] + wanted > limit[name]:
            return (
                f"Quota exceeded for {name}: requested {show(name, wanted)}, "
                f"in use {show(name, in_use[name])}, limit {show(name, limit[name])}"
            )
    return None
