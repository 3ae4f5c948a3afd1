"""The tenant ClusterRoles do, on a real kube-apiserver with RBAC, what Keystone's roles do.

Users are impersonated by the admin client (it is in system:masters), so every request
goes through the real authenticator-to-authorizer path. Key cases use real requests;
the full tables use SubjectAccessReviews, which ask the same RBAC authorizer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from operators.catalogue import KINDS
from operators.common.kinds import VERSION, Kind
from operators.compute.api import INSTANCE
from operators.identity.api import PROJECT
from operators.identity.roles import ADMIN, MEMBER, READER, RESELLER, tenant_cluster_roles
from operators.objectstorage.api import BUCKET
from tests.support import acting_as, eventually, fresh_namespace, refused

pytestmark = pytest.mark.integration

MERGE = "application/merge-patch+json"
RBAC_GROUP = "rbac.authorization.k8s.io"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
NAMESPACED = [k for k in KINDS if k.namespaced]
INSTANCE_SPEC = {"flavor": "m1.small", "image": {"name": "cirros"}}
# Cluster-scoped resources are asked about without a namespace, as the apiserver would.
CLUSTER_SCOPED = {(PROJECT.group, PROJECT.plural), ("", "namespaces")}
PROPAGATION = 15.0  # RBAC reads bindings through informers: a new one takes a moment

Permission = tuple[str, str, str]
"""(API group, resource or resource/subresource, verb)"""


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def other_namespace(api: client.ApiClient) -> Iterator[str]:
    """A second project's namespace, where the test's users hold no role (the
    ClusterRoles themselves are installed with the control plane)."""
    with fresh_namespace(api) as name:
        yield name


@pytest.fixture
def reseller(api: client.ApiClient) -> Iterator[str]:
    """A user bound to `ostack-reseller` cluster-wide; the binding is removed afterwards."""
    user = f"reseller-{uuid.uuid4().hex[:8]}"
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": user},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": RESELLER},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user}],
        }
    )
    try:
        _wait_allowed(api, user, (PROJECT.group, PROJECT.plural, "create"), None)
        yield user
    finally:
        rbac.delete_cluster_role_binding(user)


# --- helpers ------------------------------------------------------------------------------


def _bind(
    api: client.ApiClient, namespace: str, role: str, name: str, subject_kind: str = "User"
) -> None:
    """Bind a user or group to a tenant role in one namespace, as a Project would."""
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"{role}-{name}"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": subject_kind, "name": name}],
        },
    )
    user, groups = (name, ()) if subject_kind == "User" else ("probe", (name,))
    _wait_allowed(api, user, (INSTANCE.group, INSTANCE.plural, "get"), namespace, groups)


def _allowed(
    api: client.ApiClient,
    user: str,
    permission: Permission,
    namespace: str | None,
    groups: tuple[str, ...] = (),
) -> bool:
    group, resource, verb = permission
    resource, _, subresource = resource.partition("/")
    attributes: dict[str, Any] = {"group": group, "resource": resource, "verb": verb}
    if subresource:
        attributes["subresource"] = subresource
    if namespace is not None and (group, resource) not in CLUSTER_SCOPED:
        attributes["namespace"] = namespace
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": list(groups), "resourceAttributes": attributes},
        }
    )
    return bool(review.status.allowed)


def _wait_allowed(
    api: client.ApiClient,
    user: str,
    permission: Permission,
    namespace: str | None,
    groups: tuple[str, ...] = (),
) -> None:
    eventually(
        lambda: _allowed(api, user, permission, namespace, groups),
        f"{user} to get {permission} in {namespace}",
        timeout=PROPAGATION,
    )


def _object(kind: Kind, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def _create(api: client.ApiClient, kind: Kind, namespace: str, name: str, spec: dict) -> Any:
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        kind.group, VERSION, namespace, kind.plural, _object(kind, name, spec)
    )


def _requests(objects: client.CustomObjectsApi, kind: Kind, namespace: str) -> dict[str, Callable]:
    """One real request per verb on `kind` in `namespace`, naming the Instance `web`."""
    args = (kind.group, VERSION, namespace, kind.plural)
    body = _object(kind, "web", {})
    return {
        "get": lambda: objects.get_namespaced_custom_object(*args, "web"),
        "list": lambda: objects.list_namespaced_custom_object(*args),
        "watch": lambda: objects.list_namespaced_custom_object(
            *args, watch=True, timeout_seconds=1, _preload_content=False
        ),
        "create": lambda: objects.create_namespaced_custom_object(*args, body),
        "update": lambda: objects.replace_namespaced_custom_object(*args, "web", body),
        "patch": lambda: objects.patch_namespaced_custom_object(
            *args, "web", {"metadata": {"labels": {"x": "y"}}}, _content_type=MERGE
        ),
        "delete": lambda: objects.delete_namespaced_custom_object(*args, "web"),
        "deletecollection": lambda: objects.delete_collection_namespaced_custom_object(*args),
    }


def _permissions(role_name: str) -> set[Permission]:
    (role,) = [r for r in tenant_cluster_roles() if r["metadata"]["name"] == role_name]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _universe() -> set[Permission]:
    """Every verb on everything any role mentions, plus what no tenant role may touch."""
    resources = {(g, r) for g, r, _ in _permissions(RESELLER)}
    resources |= {
        (RBAC_GROUP, "rolebindings"),
        (RBAC_GROUP, "roles"),
        (RBAC_GROUP, "clusterrolebindings"),
        ("", "pods"),
        ("", "configmaps"),
        ("", "resourcequotas"),
    }
    return {(g, r, v) for g, r in resources for v in VERBS}


# --- real requests ------------------------------------------------------------------------


def test_member_creates_in_its_project_and_is_refused_everything_elsewhere(
    api: client.ApiClient, namespace: str, other_namespace: str
) -> None:
    user = f"bob-{namespace}"
    _bind(api, namespace, MEMBER, user)
    _create(api, INSTANCE, other_namespace, "web", INSTANCE_SPEC)  # someone else's

    with acting_as(api, user) as bob:
        created = _create(bob, INSTANCE, namespace, "web", INSTANCE_SPEC)
        assert created["metadata"]["namespace"] == namespace
        objects = client.CustomObjectsApi(bob)
        for kind in NAMESPACED:
            for request in _requests(objects, kind, other_namespace).values():
                refused(request)
    # The refused delete really did nothing.
    client.CustomObjectsApi(api).get_namespaced_custom_object(
        INSTANCE.group, VERSION, other_namespace, INSTANCE.plural, "web"
    )


def test_member_manages_neither_bindings_nor_projects(
    api: client.ApiClient, namespace: str
) -> None:
    user = f"bob-{namespace}"
    _bind(api, namespace, MEMBER, user)
    binding = {
        "metadata": {"name": "escalate"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": ADMIN},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user}],
    }
    with acting_as(api, user) as bob:
        rbac = client.RbacAuthorizationV1Api(bob)
        objects = client.CustomObjectsApi(bob)
        refused(lambda: rbac.create_namespaced_role_binding(namespace, binding))
        refused(
            lambda: rbac.replace_namespaced_role_binding(f"{MEMBER}-{user}", namespace, binding)
        )
        refused(
            lambda: objects.patch_cluster_custom_object(
                PROJECT.group,
                VERSION,
                PROJECT.plural,
                namespace,
                {"spec": {"quotas": {"instances": 1000}}},
                _content_type=MERGE,
            )
        )


def test_reader_lists_but_does_not_create(api: client.ApiClient, namespace: str) -> None:
    user = f"rita-{namespace}"
    _bind(api, namespace, READER, user)
    _create(api, INSTANCE, namespace, "web", INSTANCE_SPEC)
    with acting_as(api, user) as rita:
        listed = client.CustomObjectsApi(rita).list_namespaced_custom_object(
            INSTANCE.group, VERSION, namespace, INSTANCE.plural
        )
        assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]
        refused(lambda: _create(rita, INSTANCE, namespace, "db", INSTANCE_SPEC))


def test_admin_sets_bucket_acls_and_member_does_not(api: client.ApiClient, namespace: str) -> None:
    admin, member = f"alice-{namespace}", f"bob-{namespace}"
    _bind(api, namespace, ADMIN, admin)
    _bind(api, namespace, MEMBER, member)
    spec = {"storagePolicy": "silver", "acl": {"read": [".r:*"], "write": [f"{namespace}:*"]}}
    acl_change = {"spec": {"acl": {"read": [f"{namespace}:*"]}}}
    args = (BUCKET.group, VERSION, namespace, BUCKET.plural)

    with acting_as(api, admin) as alice:
        _create(alice, BUCKET, namespace, "assets", spec)
        patched = client.CustomObjectsApi(alice).patch_namespaced_custom_object(
            *args, "assets", acl_change, _content_type=MERGE
        )
        assert patched["spec"]["acl"]["read"] == [f"{namespace}:*"]
    with acting_as(api, member) as bob:
        objects = client.CustomObjectsApi(bob)
        assert objects.get_namespaced_custom_object(*args, "assets")  # uses it, by ACL
        refused(lambda: _create(bob, BUCKET, namespace, "mine", spec))
        refused(
            lambda: objects.patch_namespaced_custom_object(
                *args, "assets", {"spec": {"acl": {"read": [".r:*"]}}}, _content_type=MERGE
            )
        )
        refused(lambda: objects.delete_namespaced_custom_object(*args, "assets"))


def test_member_creates_secrets_but_cannot_read_them(api: client.ApiClient, namespace: str) -> None:
    user = f"bob-{namespace}"
    _bind(api, namespace, MEMBER, user)
    secret = {"metadata": {"name": "user-data"}, "stringData": {"userdata": "#cloud-config\n"}}
    with acting_as(api, user) as bob:
        core = client.CoreV1Api(bob)
        core.create_namespaced_secret(namespace, secret)
        refused(lambda: core.read_namespaced_secret("user-data", namespace))
        refused(lambda: core.list_namespaced_secret(namespace))


def test_a_group_gets_the_groups_rights(api: client.ApiClient, namespace: str) -> None:
    group = f"devs-{namespace}"
    _bind(api, namespace, MEMBER, group, subject_kind="Group")
    with acting_as(api, f"carol-{namespace}", group) as carol:
        _create(carol, INSTANCE, namespace, "web", INSTANCE_SPEC)
        refused(lambda: _create(carol, BUCKET, namespace, "assets", {}))
    with acting_as(api, f"carol-{namespace}") as carol_alone:
        refused(lambda: _create(carol_alone, INSTANCE, namespace, "db", INSTANCE_SPEC))


def test_reseller_creates_projects_and_reads_every_project(
    api: client.ApiClient, namespace: str, reseller: str
) -> None:
    _create(api, INSTANCE, namespace, "web", INSTANCE_SPEC)
    name = f"p-{uuid.uuid4().hex[:8]}"
    project = {
        "apiVersion": PROJECT.api_version,
        "kind": PROJECT.kind,
        "metadata": {"name": name},
        "spec": {"members": [{"user": "alice", "roles": ["admin"]}]},
    }
    try:
        with acting_as(api, reseller) as carl:
            objects = client.CustomObjectsApi(carl)
            objects.create_cluster_custom_object(PROJECT.group, VERSION, PROJECT.plural, project)
            objects.patch_cluster_custom_object(
                PROJECT.group,
                VERSION,
                PROJECT.plural,
                name,
                {"spec": {"quotas": {"instances": 5}}},
                _content_type=MERGE,
            )
            listed = objects.list_namespaced_custom_object(
                INSTANCE.group, VERSION, namespace, INSTANCE.plural
            )
            assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]
            client.CoreV1Api(carl).read_namespace(namespace)
    finally:
        client.CustomObjectsApi(api).delete_cluster_custom_object(
            PROJECT.group, VERSION, PROJECT.plural, name
        )


# --- the full tables, through SubjectAccessReviews -----------------------------------------


@pytest.mark.parametrize("role", [READER, MEMBER, ADMIN])
def test_project_role_grants_exactly_its_rules(
    api: client.ApiClient, namespace: str, role: str
) -> None:
    user = f"{role}-{namespace}"
    _bind(api, namespace, role, user)
    granted = _permissions(role)
    wrong = [p for p in sorted(_universe()) if _allowed(api, user, p, namespace) != (p in granted)]
    assert wrong == [], f"{role}: the apiserver disagrees with the rules on {wrong}"


def test_reseller_grants_its_rules_in_every_namespace(
    api: client.ApiClient, namespace: str, reseller: str
) -> None:
    granted = _permissions(RESELLER)
    wrong = [
        p for p in sorted(_universe()) if _allowed(api, reseller, p, namespace) != (p in granted)
    ]
    assert wrong == [], f"reseller: the apiserver disagrees with the rules on {wrong}"


def test_a_project_role_does_not_reach_another_namespace(
    api: client.ApiClient, namespace: str, other_namespace: str
) -> None:
    user = f"alice-{namespace}"
    _bind(api, namespace, ADMIN, user)
    leaked = [p for p in sorted(_permissions(ADMIN)) if _allowed(api, user, p, other_namespace)]
    assert leaked == []
