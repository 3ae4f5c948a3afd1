"""The labels that put an Instance's pod into its security groups and onto its pod-type
Network. The Instance controller writes them on the VM template (KubeVirt copies them to
the virt-launcher pod); NetworkPolicies select on them. Tenants cannot create pods, so
only ostack sets them."""

from __future__ import annotations

INSTANCE = "ostack.dev/instance"
"""Every Instance's pod: the name of its Instance."""
SECURITY_GROUP_PREFIX = "securitygroup.ostack.dev/"
"""`securitygroup.ostack.dev/<group>: ""` for each SecurityGroup of the Instance."""
NETWORK_NAME = "network.ostack.dev/name"
"""The pod-type Network the Instance is on (absent: none, the Project is its network)."""
NETWORK_PROJECT = "network.ostack.dev/project"
"""The Project of that Network (another Project's, for a shared Network)."""
HOLDER = "network.ostack.dev/holder"
"""On an IPAllocation: the uid of the Instance holding it."""


def security_group(name: str) -> str:
    return f"{SECURITY_GROUP_PREFIX}{name}"


def on_network(project: str, network: str) -> dict[str, str]:
    return {NETWORK_NAME: network, NETWORK_PROJECT: project}
