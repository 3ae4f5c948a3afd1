"""Keystone's roles as Kubernetes ClusterRoles: what a tenant may do in its Project.

A Project binds its members to `ostack-reader`, `ostack-member` or `ostack-admin` with
RoleBindings in its namespace, so a ClusterRole only ever grants rights inside that one
namespace. `ostack-reseller` is the exception: the cloud operator binds it with a
ClusterRoleBinding, so it reaches every project and may manage the Projects themselves.

The rules are built from the catalogue, so a new kind is covered without editing this
file. Each role is its predecessor plus more (reader ⊆ member ⊆ admin ⊆ reseller), and no
rule uses `*`: a wildcard would silently grant whatever a future CRD or subresource adds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from operators.catalogue import KINDS
from operators.common.kinds import Kind
from operators.identity.api import PROJECT
from operators.objectstorage.api import BUCKET

READER = "ostack-reader"
MEMBER = "ostack-member"
ADMIN = "ostack-admin"
RESELLER = "ostack-reseller"
ROLE_FOR = {"reader": READER, "member": MEMBER, "admin": ADMIN}
"""The ClusterRole a Project member's role (identity.api.Role) is bound to."""

LABELS = {"app.kubernetes.io/part-of": "ostack"}

# The order verbs are written in: reads first, then writes, as `kubectl` docs list them.
VERB_ORDER = ("get", "list", "watch", "create", "update", "patch", "delete")
READ = frozenset(VERB_ORDER[:3])
WRITE = frozenset(VERB_ORDER[3:])
CRUD = READ | WRITE

CORE = ""

# What a tenant sees of the objects the controllers make from its kinds. Read-only: the
# controllers own these objects, and a tenant's edit would be reverted or break them.
GENERATED_OBJECTS: Mapping[str, tuple[str, ...]] = {
    CORE: ("events", "persistentvolumeclaims"),
    "cdi.kubevirt.io": ("datasources", "datavolumes"),
    "cluster.x-k8s.io": ("clusters", "machinedeployments", "machines"),
    "events.k8s.io": ("events",),
    "instancetype.kubevirt.io": ("virtualmachineinstancetypes", "virtualmachinepreferences"),
    "k8s.cni.cncf.io": ("network-attachment-definitions",),
    "kubevirt.io": ("virtualmachineinstances", "virtualmachines"),
    "networking.k8s.io": ("networkpolicies",),
    "snapshot.storage.k8s.io": ("volumesnapshots",),
}

# Swift: a member uses buckets as their ACLs allow but does not create, delete or re-ACL
# them; that is the project admin's (DESIGN.md, Roles).
ADMIN_WRITES = frozenset({BUCKET.kind})

# KubeVirt serves the serial console and VNC as subresources in their own API group.
CONSOLE_GROUP = "subresources.kubevirt.io"
CONSOLES = ("virtualmachineinstances/console", "virtualmachineinstances/vnc")

Grants = dict[tuple[str, str], frozenset[str]]
"""(API group, resource) -> verbs."""


def tenant_cluster_roles(kinds: Sequence[Kind] = KINDS) -> list[dict[str, Any]]:
    """The four tenant ClusterRoles, reader to reseller, as API objects."""
    reader = _reader_grants(kinds)
    member = _merge(reader, _member_grants(kinds))
    admin = _merge(member, _admin_grants(kinds))
    reseller = _merge(admin, _reseller_grants())
    return [
        _cluster_role(READER, reader),
        _cluster_role(MEMBER, member),
        _cluster_role(ADMIN, admin),
        _cluster_role(RESELLER, reseller),
    ]


def _tenant_kinds(kinds: Iterable[Kind]) -> list[Kind]:
    # Cluster-scoped kinds (the Project) are the cloud operator's, never a tenant's: a
    # RoleBinding could not grant them anyway.
    return [k for k in kinds if k.namespaced]


def _reader_grants(kinds: Sequence[Kind]) -> Grants:
    grants: Grants = {}
    for kind in _tenant_kinds(kinds):
        grants[(kind.group, kind.plural)] = READ
        grants[(kind.group, f"{kind.plural}/status")] = READ
    for group, resources in GENERATED_OBJECTS.items():
        grants.update({(group, resource): READ for resource in resources})
    return grants


def _member_grants(kinds: Sequence[Kind]) -> Grants:
    # Status stays read-only for every role: only the controllers observe and write it.
    grants: Grants = {
        (k.group, k.plural): WRITE
        for k in _tenant_kinds(kinds)
        # A record (an address allocation) is the controllers' alone: a tenant who deleted
        # one could hand an address in use to a second Instance.
        if k.kind not in ADMIN_WRITES and not k.record
    }
    # Create only: members store cloud-init user data or S3 import credentials and refer
    # to them by name. Reading Secrets is withheld because the Project's object-store
    # credentials Secret lives in the same namespace; whoever reads it talks to the store
    # with the Project's keys and bypasses every bucket ACL.
    grants[(CORE, "secrets")] = frozenset({"create"})
    grants.update({(CONSOLE_GROUP, console): frozenset({"get"}) for console in CONSOLES})
    return grants


def _admin_grants(kinds: Sequence[Kind]) -> Grants:
    # The admin sets bucket ACLs and may hold the Project's credentials, so it gets both.
    grants: Grants = {
        (k.group, k.plural): CRUD for k in _tenant_kinds(kinds) if k.kind in ADMIN_WRITES
    }
    grants[(CORE, "secrets")] = CRUD
    return grants


def _reseller_grants() -> Grants:
    # Bound cluster-wide, so the admin's rules above already reach every namespace; on
    # top, the Projects (membership, quotas) and the namespaces they become.
    return {
        (PROJECT.group, PROJECT.plural): CRUD,
        (PROJECT.group, f"{PROJECT.plural}/status"): READ,
        (CORE, "namespaces"): READ,
    }


def _merge(base: Grants, extra: Grants) -> Grants:
    merged = dict(base)
    for key, verbs in extra.items():
        merged[key] = merged.get(key, frozenset()) | verbs
    return merged


def _cluster_role(name: str, grants: Grants) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": dict(LABELS)},
        "rules": _rules(grants),
    }


def _rules(grants: Grants) -> list[dict[str, Any]]:
    """One rule per API group and verb set, groups and resources sorted."""
    by_group_and_verbs: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), verbs in grants.items():
        key = (group, _ordered(verbs))
        by_group_and_verbs.setdefault(key, []).append(resource)
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, verbs), resources in sorted(by_group_and_verbs.items(), key=_rule_order)
    ]


def _ordered(verbs: frozenset[str]) -> tuple[str, ...]:
    return tuple(v for v in VERB_ORDER if v in verbs)


def _rule_order(item: tuple[tuple[str, tuple[str, ...]], list[str]]) -> tuple[Any, ...]:
    # Within a group, the broader rule first; ties broken by verbs so output is stable.
    (group, verbs), _resources = item
    return (group, -len(verbs), [VERB_ORDER.index(v) for v in verbs])
