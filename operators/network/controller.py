"""Neutron as a kopf controller: Networks become Multus attachments and count their
addresses; SecurityGroups become NetworkPolicies for the Instances in them, narrowed to
what each Instance's network can reach; every Project gets its `default` group."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from operators.common import children, handlers, kube, tenancy
from operators.common.kinds import VERSION
from operators.common.reporting import report
from operators.common.status import Reason
from operators.compute.api import INSTANCE
from operators.network import builders, ipam, labels, policies
from operators.network.api import IP_ALLOCATION, NETWORK, SECURITY_GROUP, NetworkSpec

log = logging.getLogger(__name__)
MANAGER = "ostack-network"
NETWORKS = (NETWORK.group, VERSION, NETWORK.plural)
GROUPS = (SECURITY_GROUP.group, VERSION, SECURITY_GROUP.plural)
ALLOCATIONS = (IP_ALLOCATION.group, VERSION, IP_ALLOCATION.plural)
INSTANCES = (INSTANCE.group, VERSION, INSTANCE.plural)
VMS = ("kubevirt.io", "v1", "virtualmachines")
INSTANCE_VMS = {children.MANAGED_BY: children.MANAGER, children.OWNER_KIND: INSTANCE.kind}
EXCEPT_CIDRS = tuple(c for c in os.environ.get("OSTACK_CLUSTER_CIDRS", "").split(",") if c)
"""The cluster's pod and service ranges, cut out of every ipBlock an allow-rule names, for
CNIs that match pod addresses against ipBlocks (Calico does, Cilium does not)."""


# --- indexes ---------------------------------------------------------------------------------


@kopf.index(*ALLOCATIONS)
def allocated(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    holder = spec["holder"]
    return {
        (namespace, spec["network"]): (
            spec["address"],
            name,
            holder["namespace"],
            holder["name"],
            holder["uid"],
        )
    }


@kopf.index(*ALLOCATIONS)
def allocations_by_holder(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    holder = spec["holder"]
    return {(holder["namespace"], holder["name"]): (namespace, name, holder["uid"])}


@kopf.index(*INSTANCES)
def instance_uids(namespace: str, name: str, uid: str, **_: Any):
    return {(namespace, name): uid}


def _vm_groups_and_domain(spec: dict[str, Any]) -> tuple[list[str], tuple[str, str]]:
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    groups = [
        key.removeprefix(labels.SECURITY_GROUP_PREFIX)
        for key in template_labels
        if key.startswith(labels.SECURITY_GROUP_PREFIX)
    ]
    domain = (
        template_labels.get(labels.NETWORK_PROJECT, ""),
        template_labels.get(labels.NETWORK_NAME, ""),
    )
    return groups, domain


@kopf.index(*VMS, labels=INSTANCE_VMS)
def vm_domains(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    """Per (namespace, SecurityGroup): the domain of each member VM."""
    groups, domain = _vm_groups_and_domain(dict(spec))
    return {(namespace, group): (domain, name) for group in groups}


@kopf.index(*VMS, labels=INSTANCE_VMS)
def groups_on_network(namespace: str, spec: kopf.Spec, **_: Any):
    """Per pod-type Network (project, name): the groups whose policies it shapes."""
    groups, domain = _vm_groups_and_domain(dict(spec))
    return {domain: (namespace, tuple(sorted(groups)))} if domain[1] and groups else {}


@kopf.index(*GROUPS)
def groups_by_namespace(namespace: str, name: str, **_: Any):
    return {namespace: name}


# --- Networks --------------------------------------------------------------------------------


@handlers.reconciler(NETWORK)
def reconcile_network_spec(body: kopf.Body, **indexes: Any) -> None:
    network = kube.plain(body)
    reconcile_network(network, indexes)
    # allowFrom, shared and external shape the policies of the groups on the Network.
    meta = network["metadata"]
    project = tenancy.project_of(meta["namespace"], indexes) or meta["namespace"]
    on_network = tenancy.all_of(indexes["groups_on_network"], (project, meta["name"]))
    for namespace, group in {(ns, g) for ns, groups in on_network for g in groups}:
        _reconcile_group_named(namespace, group, indexes)


def reconcile_network(network: dict[str, Any], indexes: dict[str, Any]) -> None:
    namespace, name = network["metadata"]["namespace"], network["metadata"]["name"]
    project = tenancy.project_of(namespace, indexes) or namespace
    try:
        spec = NETWORK.parse_spec(network)
        overlap = ipam.overlapping_subnets(spec)
        if overlap:
            raise ValueError(overlap)
    except ValueError as problem:
        report(network, {"phase": "ERROR"}, (False, Reason.INVALID_CONFIGURATION, str(problem)))
        return
    attachment = builders.attachment_definition(network, project, spec)
    if attachment is not None:
        kube.apply(attachment, MANAGER)
    entries = tenancy.all_of(indexes["allocated"], (namespace, name))
    _release_orphans(entries, namespace, indexes)
    fields = {
        "phase": "ACTIVE",
        "subnets": builders.subnet_status(spec, [entry[0] for entry in entries]),
        "networkAttachmentDefinition": attachment["metadata"]["name"] if attachment else None,
    }
    report(network, fields, (True, Reason.SUCCEEDED, _summary(spec)))


def _summary(spec: NetworkSpec) -> str:
    if spec.type == "pod":
        return "Instances on the Network reach each other and what allowFrom names"
    tag = f" on VLAN {spec.vlan_id}" if spec.vlan_id else ""
    return f"secondary network on bridge {spec.physical_network or builders.DEFAULT_BRIDGE}{tag}"


def _release_orphans(entries: list[tuple], namespace: str, indexes: dict[str, Any]) -> None:
    """Release addresses whose Instance is gone (deleted while this operator was down).
    The index may not have seen a brand-new Instance yet, so its absence is confirmed
    with the apiserver before anything is released."""
    for _address, allocation, holder_ns, holder, uid in entries:
        if tenancy.first(indexes["instance_uids"], (holder_ns, holder)) == uid:
            continue
        current = kube.read(INSTANCE.api_version, INSTANCE.kind, holder, holder_ns)
        if current is None or current["metadata"]["uid"] != uid:
            kube.delete(IP_ALLOCATION.api_version, IP_ALLOCATION.kind, allocation, namespace)


@kopf.on.event(*ALLOCATIONS)
def allocation_changed(namespace: str, spec: kopf.Spec, **indexes: Any) -> None:
    """Used and free counts follow every allocation and release."""
    kube.reconcile_named(
        NETWORK.api_version, NETWORK.kind, namespace, spec["network"], reconcile_network, indexes
    )


@kopf.on.event(*INSTANCES)
def instance_gone(type: str, namespace: str, name: str, uid: str, **indexes: Any) -> None:
    """An Instance that goes gives its addresses back."""
    if type != "DELETED":
        return
    for alloc_ns, allocation, holder_uid in tenancy.all_of(
        indexes["allocations_by_holder"], (namespace, name)
    ):
        if holder_uid == uid:
            kube.delete(IP_ALLOCATION.api_version, IP_ALLOCATION.kind, allocation, alloc_ns)


# --- SecurityGroups --------------------------------------------------------------------------

_converged: dict[tuple[str, str], tuple[Any, ...]] = {}
"""Per group, the members' domains its policies were last built for: a VM event that
changes no group's membership then costs no API call at all."""


def _membership(namespace: str, group: str, indexes: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(tenancy.all_of(indexes["vm_domains"], (namespace, group)))


@handlers.reconciler(SECURITY_GROUP)
def reconcile_group_spec(body: kopf.Body, **indexes: Any) -> None:
    reconcile_group(kube.plain(body), indexes)


def reconcile_group(group: dict[str, Any], indexes: dict[str, Any]) -> None:
    namespace, name = group["metadata"]["namespace"], group["metadata"]["name"]
    project = tenancy.project_of(namespace, indexes) or namespace
    try:
        spec = SECURITY_GROUP.parse_spec(group)
    except ValueError as problem:
        report(group, {}, (False, Reason.INVALID_CONFIGURATION, str(problem)))
        return
    membership = _membership(namespace, name, indexes)
    domains = sorted({policies.Domain(*domain) for domain, _vm in membership}, key=repr)
    wanted = []
    for domain in domains:
        reach = (
            policies.network_reach(domain, _network_spec(domain, indexes), project)
            if domain.network
            else policies.project_reach()
        )
        body = policies.security_group_policy(group, spec, project, domain, reach, EXCEPT_CIDRS)
        kube.apply(body, MANAGER)
        wanted.append(body["metadata"]["name"])
    _prune_policies(namespace, name, set(wanted))
    members = len(membership)
    fields = {"networkPolicies": sorted(wanted) or None, "members": members}
    message = f"{len(wanted)} NetworkPolicies for {members} Instances"
    report(group, fields, (True, Reason.SUCCEEDED, message))
    _converged[(namespace, name)] = membership


def _network_spec(domain: policies.Domain, indexes: dict[str, Any]) -> NetworkSpec | None:
    namespace = tenancy.first(indexes["namespace_by_project"], domain.project) or domain.project
    network = kube.read(NETWORK.api_version, NETWORK.kind, domain.network, namespace)
    if network is None:
        return None
    try:
        return NETWORK.parse_spec(network)
    except ValueError:
        return None


def _prune_policies(namespace: str, group: str, wanted: set[str]) -> None:
    """Delete the group's policies for domains none of its Instances are on any more."""
    selector = f"{children.owned_by_selector(SECURITY_GROUP.kind)},{children.OWNER_NAME}={group}"
    found = kube.resource("networking.k8s.io/v1", "NetworkPolicy").get(
        namespace=namespace, label_selector=selector
    )
    for item in found.items:
        if item.metadata.name not in wanted:
            kube.delete("networking.k8s.io/v1", "NetworkPolicy", item.metadata.name, namespace)


def _reconcile_group_named(namespace: str, name: str, indexes: dict[str, Any]) -> None:
    kube.reconcile_named(
        SECURITY_GROUP.api_version, SECURITY_GROUP.kind, namespace, name, reconcile_group, indexes
    )


@kopf.on.event(*VMS, labels=INSTANCE_VMS)
def vm_changed(namespace: str, **indexes: Any) -> None:
    """An Instance joined or left a group, or moved network: its groups' policies follow."""
    for group in tenancy.all_of(indexes["groups_by_namespace"], namespace):
        if _converged.get((namespace, group)) != _membership(namespace, group, indexes):
            _reconcile_group_named(namespace, group, indexes)


@kopf.on.event(
    "networking.k8s.io", "v1", "networkpolicies", labels={children.OWNER_KIND: SECURITY_GROUP.kind}
)
def policy_changed(namespace: str, labels: kopf.Labels, **indexes: Any) -> None:
    """Someone else's edit of a group's policy is put back."""
    _reconcile_group_named(namespace, labels[children.OWNER_NAME], indexes)


# --- every Project's default group -----------------------------------------------------------


def ensure_default_group(namespace: str, project: str) -> None:
    """Create the Project's `default` group unless it exists; never overwrite its rules,
    which the Project's admin may edit as in Neutron."""
    if kube.read(SECURITY_GROUP.api_version, SECURITY_GROUP.kind, "default", namespace):
        return
    try:
        kube.send(policies.default_group(namespace, project), "POST", [])
    except ApiException as error:
        if error.status != 409 and not kube.namespace_ending(error):
            raise
        return
    log.info("created the default SecurityGroup of Project %s", project)


@kopf.on.event("", "v1", "namespaces", labels={children.PROJECT: kopf.PRESENT})
def project_namespace_changed(
    type: str, name: str, labels: kopf.Labels, status: kopf.Status, **_: Any
) -> None:
    if type == "DELETED" or status.get("phase") == "Terminating":
        return
    ensure_default_group(name, labels[children.PROJECT])


@kopf.on.event(*GROUPS)
def group_changed(type: str, namespace: str, name: str, **indexes: Any) -> None:
    """A deleted `default` group comes back while its Project lives, as Neutron keeps it."""
    if type != "DELETED" or name != "default":
        return
    project = tenancy.project_of(namespace, indexes)
    found = kube.read("v1", "Namespace", namespace)
    if project is not None and found and (found.get("status") or {}).get("phase") == "Active":
        ensure_default_group(namespace, project)
