"""Pure builders for a Network: its Multus NetworkAttachmentDefinition and what its status
says about address usage."""

from __future__ import annotations

import json
import os
from typing import Any

from operators.common import children
from operators.network import ipam
from operators.network.api import NetworkSpec

NAD_API = "k8s.cni.cncf.io/v1"
DEFAULT_BRIDGE = os.environ.get("OSTACK_DEFAULT_BRIDGE", "br-ostack")
"""The node bridge of a bridge/vlan Network that names no physicalNetwork."""


def cni_config(namespace: str, name: str, spec: NetworkSpec) -> dict[str, Any]:
    """The bridge CNI configuration of a secondary L2 network.

    IPAM is ostack's own, not the CNI's: KubeVirt's bridge binding cannot hand a per-VM
    address to Multus, and a second allocator (host-local, whereabouts) would give out
    addresses ostack has already given to other Instances. So the CNI configures layer 2
    only, and each Instance learns its allocated address from cloud-init network data,
    as an OpenStack guest learns it from the config drive. The subnets are recorded in
    `ostack.subnets` for anyone reading the attachment.
    """
    config: dict[str, Any] = {
        "cniVersion": "0.3.1",
        "name": f"{namespace}-{name}",
        "type": "bridge",
        "bridge": spec.physical_network or DEFAULT_BRIDGE,
        "ipam": {},
    }
    if spec.vlan_id is not None:
        config["vlan"] = spec.vlan_id
    if spec.mtu is not None:
        config["mtu"] = spec.mtu
    if spec.subnets:
        config["ostack"] = {
            "subnets": [
                {
                    "cidr": s.cidr,
                    "gateway": str(ipam.gateway(s)),
                    "allocationPools": [{"start": str(a), "end": str(b)} for a, b in ipam.pools(s)],
                    "dnsNameservers": s.dns_nameservers,
                }
                for s in spec.subnets
            ]
        }
    return config


def attachment_definition(
    network: dict[str, Any], project: str, spec: NetworkSpec
) -> dict[str, Any] | None:
    """The Multus NetworkAttachmentDefinition of a bridge/vlan Network (none for pod)."""
    if spec.type == "pod":
        return None
    meta = network["metadata"]
    return {
        "apiVersion": NAD_API,
        "kind": "NetworkAttachmentDefinition",
        "metadata": children.child_metadata(network, project, meta["name"], meta["namespace"]),
        # Sorted keys: the config is a string, compared byte for byte on every resync.
        "spec": {
            "config": json.dumps(cni_config(meta["namespace"], meta["name"], spec), sort_keys=True)
        },
    }


def subnet_status(spec: NetworkSpec, allocated: list[str]) -> list[dict[str, Any]] | None:
    if spec.type == "pod" or not spec.subnets:
        return None  # a pod network's addresses are the CNI's, not counted here
    return [
        {
            **({"name": u.name} if u.name else {}),
            "cidr": u.cidr,
            "used": u.used,
            "free": u.free,
        }
        for u in ipam.usage(spec, allocated)
    ]
