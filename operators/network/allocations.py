"""Taking and giving back a Network's addresses: one IPAllocation object per address.

The object's name is the Network's name and the address, so the apiserver's refusal of a
second object of one name is what makes an address single-holder, however many
Instances ask at once. Used by the Instance controller, which needs the address to
build the VM; the Network controller counts the allocations and releases those whose
Instance is gone.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes.client.exceptions import ApiException

from operators.common import children, kube
from operators.network import ipam, labels
from operators.network.api import IP_ALLOCATION, NetworkSpec

log = logging.getLogger(__name__)


class AllocationRefused(Exception):
    """The Instance cannot have the address it asked for, or any: the user must act."""


def held(network: str, namespace: str, uid: str) -> list[dict[str, Any]]:
    """The allocations an Instance holds on a Network, as the apiserver has them now."""
    selector = f"{labels.NETWORK_NAME}={network},{labels.HOLDER}={uid}"
    found = kube.resource(IP_ALLOCATION.api_version, IP_ALLOCATION.kind).get(
        namespace=namespace, label_selector=selector
    )
    return [item.to_dict() for item in found.items]


def taken(network: str, namespace: str) -> list[str]:
    """Every address allocated on a Network."""
    found = kube.resource(IP_ALLOCATION.api_version, IP_ALLOCATION.kind).get(
        namespace=namespace, label_selector=f"{labels.NETWORK_NAME}={network}"
    )
    return [item["spec"]["address"] for item in found.items]


def allocation(
    network: dict[str, Any],
    project: str,
    address: str,
    instance: dict[str, Any],
    fixed: bool,
) -> dict[str, Any]:
    net_meta, meta = network["metadata"], instance["metadata"]
    body_meta = children.child_metadata(
        network,
        project,
        ipam.allocation_name(net_meta["name"], address),
        net_meta["namespace"],
        labels={labels.NETWORK_NAME: net_meta["name"], labels.HOLDER: meta["uid"]},
    )
    # An Instance of the same namespace owns it too, so the garbage collector releases
    # it even while the network service is not running.
    if meta["namespace"] == net_meta["namespace"]:
        body_meta["ownerReferences"].append(
            {**children.owner_reference(instance), "controller": False}
        )
    return {
        "apiVersion": IP_ALLOCATION.api_version,
        "kind": IP_ALLOCATION.kind,
        "metadata": body_meta,
        "spec": {
            "network": net_meta["name"],
            "address": address,
            "fixed": fixed,
            "holder": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
        },
    }


def _create(body: dict[str, Any]) -> bool:
    """Create the allocation; False if the address is already someone's."""
    try:
        kube.send(body, "POST", [])
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def claim(
    network: dict[str, Any],
    project: str,
    spec: NetworkSpec,
    instance: dict[str, Any],
    fixed_ip: str | None,
) -> str | None:
    """The Instance's address on the Network: the one it holds, else `fixed_ip`, else a
    free one from the pools. None when the Network has no subnets (layer 2 only).

    Raises AllocationRefused with a message for the user.
    """
    net_meta, uid = network["metadata"], instance["metadata"]["uid"]
    name = net_meta["name"]
    mine = held(name, net_meta["namespace"], uid)
    if fixed_ip is not None:
        problem = ipam.fixed_ip_problem(spec, name, fixed_ip)
        if problem:
            raise AllocationRefused(problem)
    for current in mine:
        address = current["spec"]["address"]
        if fixed_ip is None or address == ipam.normal(fixed_ip):
            return address
        release(current)  # the Instance asks for another address now
    if not spec.subnets:
        return None
    if fixed_ip is not None:
        return _claim_fixed(network, project, instance, ipam.normal(fixed_ip))
    return _claim_any(network, project, spec, instance)


def _claim_fixed(network, project, instance, address: str) -> str:
    body = allocation(network, project, address, instance, fixed=True)
    if _create(body):
        return address
    where = (IP_ALLOCATION.api_version, IP_ALLOCATION.kind, *_name_and_namespace(body))
    holder = kube.read(*where)
    if holder is None:  # released meanwhile: take it
        if _create(body):
            return address
        holder = kube.read(*where)
    who = (holder or {}).get("spec", {}).get("holder", {})
    if who.get("uid") == instance["metadata"]["uid"]:
        return address
    raise AllocationRefused(
        f"{address} on Network {network['metadata']['name']} is already held by Instance"
        f" {who.get('namespace')}/{who.get('name')}"
    )


def _claim_any(network, project, spec: NetworkSpec, instance) -> str:
    name, namespace = network["metadata"]["name"], network["metadata"]["namespace"]
    used = taken(name, namespace)
    for subnet in spec.subnets:
        for address in ipam.candidates(subnet, used, instance["metadata"]["uid"]):
            if _create(allocation(network, project, address, instance, fixed=False)):
                return address
    summary = "; ".join(
        f"{u.cidr}: {u.used} used, {u.free} free" for u in ipam.usage(spec, taken(name, namespace))
    )
    raise AllocationRefused(
        f"Network {name} has no free address left in its allocation pools ({summary});"
        " free one or add a subnet"
    )


def _name_and_namespace(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["name"], body["metadata"]["namespace"]


def release(allocation_obj: dict[str, Any]) -> None:
    meta = allocation_obj["metadata"]
    kube.delete(IP_ALLOCATION.api_version, IP_ALLOCATION.kind, meta["name"], meta["namespace"])
