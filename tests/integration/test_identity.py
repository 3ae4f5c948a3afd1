"""Keystone: Projects become tenants, on a real control plane with RBAC, run by the real
identity operator process."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.catalogue import KINDS
from operators.common.kinds import VERSION, Kind
from operators.compute.api import INSTANCE
from operators.identity.api import PROJECT
from operators.objectstorage.api import BUCKET
from tests.support import Operator, acting_as, an_event, eventually, refused

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
VERBS = ("get", "list", "create", "update", "patch", "delete")


@pytest.fixture(scope="module", autouse=True)
def identity(run_operator: Callable[..., Operator]) -> Operator:
    return run_operator("identity")


@pytest.fixture
def projects(api: client.ApiClient) -> Iterator[Callable[..., Obj]]:
    """Create Projects; whatever a test leaves is deleted with Cascade at the end."""
    custom = client.CustomObjectsApi(api)
    made: list[str] = []

    def make(spec: Obj, name: str | None = None) -> Obj:
        name = name or f"p-{uuid.uuid4().hex[:6]}"
        body = {"apiVersion": PROJECT.api_version, "kind": "Project", "metadata": {"name": name}}
        made.append(name)
        return custom.create_cluster_custom_object(
            PROJECT.group, VERSION, PROJECT.plural, {**body, "spec": spec}
        )

    yield make
    for name in made:
        try:
            custom.patch_cluster_custom_object(
                PROJECT.group,
                VERSION,
                PROJECT.plural,
                name,
                {"spec": {"deletionPolicy": "Cascade"}},
            )
            custom.delete_cluster_custom_object(PROJECT.group, VERSION, PROJECT.plural, name)
        except ApiException as error:
            if error.status != 404:
                raise


def project(api: client.ApiClient, name: str) -> Obj | None:
    try:
        return client.CustomObjectsApi(api).get_cluster_custom_object(
            PROJECT.group, VERSION, PROJECT.plural, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def ready(api: client.ApiClient, name: str) -> Obj | None:
    obj = project(api, name) or {}
    conditions = obj.get("status", {}).get("conditions", [])
    done = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return obj if done else None


def create(api: client.ApiClient, kind: Kind, namespace: str, name: str, spec: Obj) -> Obj:
    body = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name}}
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        kind.group, VERSION, namespace, kind.plural, {**body, "spec": spec}
    )


def delete(api: client.ApiClient, kind: Kind, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        kind.group, VERSION, namespace, kind.plural, name
    )


def server(cpu: int = 1) -> Obj:
    return {"resources": {"cpu": cpu, "memory": "1Gi"}, "image": {"name": "cirros"}}


def volume(size: str) -> Obj:
    return {"size": size}


def test_project_becomes_a_tenant(api: client.ApiClient, projects: Callable[..., Obj]) -> None:
    made = projects(
        {
            "members": [
                {"user": "alice", "roles": ["admin"]},
                {"group": "devs", "roles": ["member"]},
                {"serviceAccount": "ci", "roles": ["member", "reader"]},
            ],
            "quotas": {"instances": 3, "volumes": 2},
        }
    )
    name = made["metadata"]["name"]
    status = eventually(lambda: ready(api, name), f"Project {name} Ready")["status"]
    assert status["phase"] == "Ready"
    assert status["namespace"] == name
    assert status["observedGeneration"] == 1
    assert status["quotaUsage"]["instances"] == {"inUse": "0", "limit": "3"}

    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    labels = core.read_namespace(name).metadata.labels
    assert labels["ostack.dev/project"] == name
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    bindings = {b.metadata.name: b for b in rbac.list_namespaced_role_binding(name).items}
    assert set(bindings) == {"ostack-admin", "ostack-member", "ostack-reader"}
    members = {(s.kind, s.name) for s in bindings["ostack-member"].subjects}
    assert members == {("Group", "devs"), ("ServiceAccount", "ci")}
    assert bindings["ostack-admin"].metadata.owner_references[0].name == name
    quota = core.read_namespaced_resource_quota("ostack-quota", name)
    assert quota.spec.hard == {
        "count/instances.compute.ostack.dev": "3",
        "count/volumes.blockstorage.ostack.dev": "2",
    }
    core.read_namespaced_limit_range("ostack-defaults", name)
    policy = client.NetworkingV1Api(api).read_namespaced_network_policy(
        "ostack-project-isolation", name
    )
    assert policy.spec.pod_selector.to_dict() == {"match_expressions": None, "match_labels": None}
    assert policy.spec.ingress[0]._from[0].pod_selector.to_dict() == {
        "match_expressions": [
            {"key": "ostack.dev/instance", "operator": "DoesNotExist", "values": None}
        ],
        "match_labels": None,
    }


def test_members_act_only_in_their_own_project(
    api: client.ApiClient, projects: Callable[..., Obj]
) -> None:
    a = projects({"members": [{"user": "amy", "roles": ["member"]}]})["metadata"]["name"]
    b = projects({"members": [{"user": "bob", "roles": ["member"]}]})["metadata"]["name"]
    for name in (a, b):
        eventually(lambda name=name: ready(api, name), f"Project {name} Ready")
    with acting_as(api, "amy") as amy:
        custom = client.CustomObjectsApi(amy)
        eventually(
            lambda: _try(lambda: create(amy, INSTANCE, a, "web", server())),
            "amy's member binding to take effect",
        )
        for kind in (k for k in KINDS if k.namespaced):
            for verb, call in _calls(custom, kind, b).items():
                refused(call), f"{verb} {kind.plural} in {b}"
        refused(
            lambda: custom.patch_cluster_custom_object(
                PROJECT.group, VERSION, PROJECT.plural, a, {"spec": {"quotas": {"cores": 99}}}
            )
        )
        refused(
            lambda: client.RbacAuthorizationV1Api(amy).patch_namespaced_role_binding(
                "ostack-member", a, {"subjects": []}
            )
        )


def test_reader_reads_and_admin_sets_bucket_acls(
    api: client.ApiClient, projects: Callable[..., Obj]
) -> None:
    spec = {"members": [{"user": "rita", "roles": ["reader"]}, {"user": "ada", "roles": ["admin"]}]}
    name = projects(spec)["metadata"]["name"]
    eventually(lambda: ready(api, name), f"Project {name} Ready")
    with acting_as(api, "ada") as ada:
        eventually(
            lambda: _try(lambda: create(ada, BUCKET, name, "assets", {"acl": {"read": [".r:*"]}})),
            "ada's admin binding to take effect",
        )
        client.CustomObjectsApi(ada).patch_namespaced_custom_object(
            BUCKET.group, VERSION, name, BUCKET.plural, "assets", {"spec": {"acl": {"read": []}}}
        )
    with acting_as(api, "rita") as rita:
        custom = client.CustomObjectsApi(rita)
        eventually(
            lambda: _try(
                lambda: custom.list_namespaced_custom_object(
                    BUCKET.group, VERSION, name, BUCKET.plural
                )
            ),
            "rita's reader binding to take effect",
        )
        refused(lambda: create(rita, INSTANCE, name, "web", server()))


def test_quotas_refuse_the_one_too_many(
    api: client.ApiClient, projects: Callable[..., Obj]
) -> None:
    quotas = {"instances": 2, "cores": 3, "volumes": 1, "gigabytes": "5Gi"}
    name = projects({"quotas": quotas})["metadata"]["name"]
    eventually(lambda: ready(api, name), f"Project {name} Ready")
    # The apiserver's quota admission reads ResourceQuotas from its own cache, which may
    # lag the counted quota by a moment ("status unknown for quota").
    eventually(lambda: _try(lambda: create(api, INSTANCE, name, "one", server(cpu=1))), "create")
    create(api, INSTANCE, name, "two", server(cpu=1))
    # The webhook counts from the operator's watches; status.quotaUsage shows what they
    # have seen. (A create racing ahead of them meets the ResourceQuota backstop instead.)
    eventually(lambda: _usage(api, name, "instances") == "2", "both creates to be counted")
    message = refused(lambda: create(api, INSTANCE, name, "three", server(cpu=1)))
    assert "Quota exceeded for instances: requested 1, in use 2, limit 2" in message

    delete(api, INSTANCE, name, "two")
    eventually(lambda: _usage(api, name, "instances") == "1", "the delete to be counted")
    message = refused(lambda: create(api, INSTANCE, name, "big", server(cpu=4)))
    assert "Quota exceeded for cores: requested 4, in use 1, limit 3" in message

    from operators.blockstorage.api import VOLUME

    message = refused(lambda: create(api, VOLUME, name, "huge", volume("8Gi")))
    assert "Quota exceeded for gigabytes: requested 8Gi, in use 0, limit 5Gi" in message
    create(api, VOLUME, name, "data", volume("5Gi"))
    eventually(lambda: _usage(api, name, "gigabytes") == "5Gi", "the volume to be counted")
    message = refused(lambda: create(api, VOLUME, name, "more", volume("1Gi")))
    assert "Quota exceeded for volumes: requested 1, in use 1, limit 1" in message


def test_the_resource_quota_backstop_counts_what_races_past_the_webhook(
    api: client.ApiClient, projects: Callable[..., Obj]
) -> None:
    name = projects({"quotas": {"instances": 1}})["metadata"]["name"]
    eventually(lambda: ready(api, name), f"Project {name} Ready")
    eventually(lambda: _try(lambda: create(api, INSTANCE, name, "one", server())), "create")
    # No wait: whichever of the webhook and the ResourceQuota answers, the second is refused.
    message = refused(lambda: create(api, INSTANCE, name, "two", server()))
    assert "Quota exceeded for instances" in message or "exceeded quota: ostack-quota" in message


def test_restrict_holds_a_project_until_it_is_empty(
    api: client.ApiClient, projects: Callable[..., Obj]
) -> None:
    name = projects({})["metadata"]["name"]
    eventually(lambda: ready(api, name), f"Project {name} Ready")
    create(api, INSTANCE, name, "web", server())
    client.CustomObjectsApi(api).delete_cluster_custom_object(
        PROJECT.group, VERSION, PROJECT.plural, name
    )

    def held() -> Obj | None:
        status = (project(api, name) or {}).get("status", {})
        return status if status.get("remainingResources") == ["1 instance"] else None

    status = eventually(held, "the deleted Project to say what it still holds")
    assert status["phase"] == "Deleting"
    delete(api, INSTANCE, name, "web")
    eventually(lambda: project(api, name) is None, "the emptied Project to go")
    eventually(lambda: _namespace_going(api, name), f"namespace {name} to be deleted with it")


def test_switching_a_held_project_to_cascade_releases_it(
    api: client.ApiClient, projects: Callable[..., Obj]
) -> None:
    name = projects({})["metadata"]["name"]
    eventually(lambda: ready(api, name), f"Project {name} Ready")
    create(api, INSTANCE, name, "web", server())
    custom = client.CustomObjectsApi(api)
    custom.delete_cluster_custom_object(PROJECT.group, VERSION, PROJECT.plural, name)
    eventually(
        lambda: (project(api, name) or {}).get("status", {}).get("phase") == "Deleting",
        "the Project to be held",
    )
    custom.patch_cluster_custom_object(
        PROJECT.group, VERSION, PROJECT.plural, name, {"spec": {"deletionPolicy": "Cascade"}}
    )
    eventually(lambda: project(api, name) is None, "the Project to go once it may cascade")
    eventually(lambda: _namespace_going(api, name), f"namespace {name} to go with it")


def test_cascade_deletes_everything(api: client.ApiClient, projects: Callable[..., Obj]) -> None:
    name = projects({"deletionPolicy": "Cascade"})["metadata"]["name"]
    eventually(lambda: ready(api, name), f"Project {name} Ready")
    create(api, INSTANCE, name, "web", server())
    client.CustomObjectsApi(api).delete_cluster_custom_object(
        PROJECT.group, VERSION, PROJECT.plural, name
    )
    eventually(lambda: project(api, name) is None, "the Cascade Project to go")
    eventually(lambda: _namespace_going(api, name), f"namespace {name} and its Instance to go")


def test_a_namespace_that_is_not_ours_is_never_adopted(
    api: client.ApiClient, projects: Callable[..., Obj], namespace: str
) -> None:
    name = projects({"namespace": namespace})["metadata"]["name"]

    def refused_with_reason() -> Obj | None:
        conditions = (project(api, name) or {}).get("status", {}).get("conditions", [])
        ready_ = next((c for c in conditions if c["type"] == "Ready"), None)
        return ready_ if ready_ and ready_["reason"] == "InvalidConfiguration" else None

    condition = eventually(refused_with_reason, "the Project to refuse the namespace")
    assert f"namespace {namespace} already exists" in condition["message"]
    assert "ostack.dev/project" not in (
        client.CoreV1Api(api).read_namespace(namespace).metadata.labels or {}
    )
    an_event(api, None, name, lambda e: e.reason == "InvalidConfiguration")


def test_members_and_drift_are_kept_in_step(
    api: client.ApiClient, projects: Callable[..., Obj]
) -> None:
    spec = {"members": [{"user": "al", "roles": ["admin"]}, {"user": "mo", "roles": ["member"]}]}
    name = projects(spec)["metadata"]["name"]
    eventually(lambda: ready(api, name), f"Project {name} Ready")
    rbac = client.RbacAuthorizationV1Api(api)
    networking = client.NetworkingV1Api(api)

    rbac.patch_namespaced_role_binding(
        "ostack-admin", name, {"subjects": [{"kind": "User", "name": "mallory"}]}
    )
    networking.delete_namespaced_network_policy("ostack-project-isolation", name)
    eventually(
        lambda: (
            [s.name for s in rbac.read_namespaced_role_binding("ostack-admin", name).subjects]
            == ["al"]
        ),
        "the edited RoleBinding to be repaired",
    )
    eventually(
        lambda: _try(
            lambda: networking.read_namespaced_network_policy("ostack-project-isolation", name)
        ),
        "the deleted NetworkPolicy to come back",
    )

    client.CustomObjectsApi(api).patch_cluster_custom_object(
        PROJECT.group,
        VERSION,
        PROJECT.plural,
        name,
        {"spec": {"members": [{"user": "al", "roles": ["admin"]}]}},
    )
    eventually(
        lambda: (
            "ostack-member"
            not in {b.metadata.name for b in rbac.list_namespaced_role_binding(name).items}
        ),
        "the removed member's RoleBinding to go",
    )


# --- helpers ---------------------------------------------------------------------------------


def _usage(api: client.ApiClient, name: str, quota: str) -> str | None:
    usage = (project(api, name) or {}).get("status", {}).get("quotaUsage", {})
    return usage.get(quota, {}).get("inUse")


def _try(call: Callable[[], object]) -> bool:
    """Whether `call` succeeds yet: RBAC may take a moment to see a new binding, and a
    repaired object a moment to come back."""
    try:
        call()
    except ApiException as error:
        if error.status in (403, 404, 409):
            return error.status == 409  # 409: it worked on an earlier try
        raise
    return True


def _namespace_going(api: client.ApiClient, name: str) -> bool:
    try:
        namespace = client.CoreV1Api(api).read_namespace(name)
    except ApiException as error:
        return error.status == 404
    return namespace.metadata.deletion_timestamp is not None


def _calls(custom: client.CustomObjectsApi, kind: Kind, namespace: str) -> dict[str, Callable]:
    args = (kind.group, VERSION, namespace, kind.plural)
    body = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": "x"}}
    calls: dict[str, Callable] = {
        "get": lambda: custom.get_namespaced_custom_object(*args, "x"),
        "list": lambda: custom.list_namespaced_custom_object(*args),
        "create": lambda: custom.create_namespaced_custom_object(*args, {**body, "spec": {}}),
        "update": lambda: custom.replace_namespaced_custom_object(*args, "x", body),
        "patch": lambda: custom.patch_namespaced_custom_object(*args, "x", {"spec": {}}),
        "delete": lambda: custom.delete_namespaced_custom_object(*args, "x"),
    }
    assert set(calls) == set(VERBS)
    return calls


def test_a_converged_project_costs_no_writes_on_restart(
    api: client.ApiClient, projects: Callable[..., Obj], identity: Operator
) -> None:
    spec = {"members": [{"user": "al", "roles": ["admin"]}], "quotas": {"instances": 2}}
    name = projects(spec)["metadata"]["name"]
    eventually(lambda: ready(api, name), f"Project {name} Ready")

    def versions() -> dict[str, str]:
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        found = {"project": project(api, name)["metadata"]["resourceVersion"]}
        found["namespace"] = core.read_namespace(name).metadata.resource_version
        for b in rbac.list_namespaced_role_binding(name).items:
            found[b.metadata.name] = b.metadata.resource_version
        for q in core.list_namespaced_resource_quota(name).items:
            found[q.metadata.name] = q.metadata.resource_version
        return found

    # Settled: the handler has recorded what it handled, the quota has been counted, and
    # nothing moves any more.
    eventually(
        lambda: (
            "identity.ostack.dev/last-handled-configuration"
            in ((project(api, name) or {})["metadata"].get("annotations") or {})
        ),
        "the handler to finish",
    )
    before = eventually(
        lambda: (v := versions()) == versions() and v, "the Project's objects to settle"
    )
    identity.kill()
    identity.start()
    eventually(
        lambda: f"reconciled Project {name}" in identity.output(),
        "the restarted operator to resume the Project",
    )
    assert versions() == before, "a restart rewrote a converged Project or its children"
