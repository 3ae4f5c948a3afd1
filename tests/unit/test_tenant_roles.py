"""The tenant ClusterRoles: what each Keystone role may do, checked on the generated rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from operators.catalogue import KINDS
from operators.common.kinds import Kind
from operators.identity.roles import ADMIN, MEMBER, READER, RESELLER, tenant_cluster_roles
from operators.objectstorage.api import BUCKET

Permission = tuple[str, str, str]
"""(API group, resource, verb)"""

NAMESPACED = [k for k in KINDS if k.namespaced]
WRITES = ("create", "update", "patch", "delete")
READS = ("get", "list", "watch")


def _permissions(role: dict[str, Any]) -> set[Permission]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.fixture(scope="module")
def roles() -> dict[str, set[Permission]]:
    return {r["metadata"]["name"]: _permissions(r) for r in tenant_cluster_roles()}


def test_four_labelled_cluster_roles() -> None:
    generated = tenant_cluster_roles()
    assert [r["metadata"]["name"] for r in generated] == [READER, MEMBER, ADMIN, RESELLER]
    for role in generated:
        assert role["apiVersion"] == "rbac.authorization.k8s.io/v1"
        assert role["kind"] == "ClusterRole"
        assert role["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ostack"


def test_no_wildcards() -> None:
    for role in tenant_cluster_roles():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert not any("*" in value for value in rule[field]), (role, rule)
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule


def test_rules_are_grouped_per_api_group_and_sorted() -> None:
    for role in tenant_cluster_roles():
        groups = [rule["apiGroups"] for rule in role["rules"]]
        assert all(len(g) == 1 for g in groups)
        assert [g[0] for g in groups] == sorted(g[0] for g in groups)
        for rule in role["rules"]:
            assert rule["resources"] == sorted(rule["resources"])


def test_output_is_deterministic() -> None:
    assert tenant_cluster_roles() == tenant_cluster_roles()


@pytest.mark.parametrize("kind", NAMESPACED, ids=lambda k: k.kind)
def test_reader_reads_every_namespaced_kind_and_its_status(
    kind: Kind, roles: dict[str, set[Permission]]
) -> None:
    for verb in READS:
        assert (kind.group, kind.plural, verb) in roles[READER]
        assert (kind.group, f"{kind.plural}/status", verb) in roles[READER]
    assert not any(verb in WRITES for _, _, verb in roles[READER])


@pytest.mark.parametrize("kind", NAMESPACED, ids=lambda k: k.kind)
def test_member_writes_every_namespaced_kind_but_buckets_and_records(
    kind: Kind, roles: dict[str, set[Permission]]
) -> None:
    writable = {(kind.group, kind.plural, verb) for verb in WRITES}
    if kind.record:
        assert not writable & roles[RESELLER]
    elif kind.kind == BUCKET.kind:
        assert not writable & roles[MEMBER]
    else:
        assert writable <= roles[MEMBER]


@pytest.mark.parametrize("role", [READER, MEMBER, ADMIN, RESELLER])
def test_status_is_never_writable(role: str, roles: dict[str, set[Permission]]) -> None:
    assert not {p for p in roles[role] if p[1].endswith("/status") and p[2] in WRITES}


def test_admin_writes_buckets(roles: dict[str, set[Permission]]) -> None:
    for verb in (*READS, *WRITES):
        assert (BUCKET.group, BUCKET.plural, verb) in roles[ADMIN]


def test_secrets(roles: dict[str, set[Permission]]) -> None:
    def secrets(role: str) -> set[str]:
        return {
            verb for group, resource, verb in roles[role] if (group, resource) == ("", "secrets")
        }

    assert secrets(READER) == set()
    assert secrets(MEMBER) == {"create"}
    assert secrets(ADMIN) == {*READS, *WRITES}


def test_member_reaches_the_console(roles: dict[str, set[Permission]]) -> None:
    for resource in ("virtualmachineinstances/console", "virtualmachineinstances/vnc"):
        assert ("subresources.kubevirt.io", resource, "get") in roles[MEMBER]
        assert ("subresources.kubevirt.io", resource, "get") not in roles[READER]


def test_only_the_reseller_touches_projects_and_namespaces(
    roles: dict[str, set[Permission]],
) -> None:
    def touches(role: str) -> bool:
        return any(
            group == "identity.ostack.dev" or resource == "namespaces"
            for group, resource, _ in roles[role]
        )

    assert not any(touches(role) for role in (READER, MEMBER, ADMIN))
    for verb in (*READS, *WRITES):
        assert ("identity.ostack.dev", "projects", verb) in roles[RESELLER]
    for verb in READS:
        assert ("identity.ostack.dev", "projects/status", verb) in roles[RESELLER]
        assert ("", "namespaces", verb) in roles[RESELLER]


def test_no_role_manages_rbac(roles: dict[str, set[Permission]]) -> None:
    # Membership is the cloud operator's: a tenant granting itself roles would escalate.
    for permissions in roles.values():
        assert not any(group == "rbac.authorization.k8s.io" for group, _, _ in permissions)


def test_roles_are_monotonic(roles: dict[str, set[Permission]]) -> None:
    assert roles[READER] < roles[MEMBER] < roles[ADMIN] < roles[RESELLER]


def test_a_new_kind_is_covered_without_editing_the_roles() -> None:
    new = dataclasses.replace(BUCKET, group="dns.ostack.dev", kind="Zone", plural="zones")
    reader, member, *_ = (_permissions(r) for r in tenant_cluster_roles((*KINDS, new)))
    assert ("dns.ostack.dev", "zones/status", "watch") in reader
    assert ("dns.ostack.dev", "zones", "create") in member
