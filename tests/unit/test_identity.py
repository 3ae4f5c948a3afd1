"""The identity service's pure parts: what a Project becomes, and how quotas count."""

from __future__ import annotations

from decimal import Decimal

import pytest

from operators.common.conditions import is_subset, set_condition
from operators.common.status import Reason
from operators.identity import builders, quota
from operators.identity.api import PROJECT

GI = 2**30


def project(spec: dict, name: str = "demo") -> tuple[dict, object]:
    body = {
        "apiVersion": PROJECT.api_version,
        "kind": "Project",
        "metadata": {"name": name, "uid": "u-1"},
        "spec": spec,
    }
    return body, PROJECT.parse_spec(body)


def test_namespace_is_labelled_and_owned() -> None:
    body, spec = project({"namespace": "tenant-a", "description": "A"})
    ns = builders.namespace(body, spec)
    assert ns["metadata"]["name"] == "tenant-a"
    labels = ns["metadata"]["labels"]
    assert labels["ostack.dev/project"] == "demo"
    assert labels["app.kubernetes.io/managed-by"] == "ostack"
    assert labels["ostack.dev/owner-kind"] == "Project"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert ns["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_one_binding_per_role_and_none_for_unheld_roles() -> None:
    body, spec = project(
        {
            "members": [
                {"user": "alice", "roles": ["admin", "reader"]},
                {"group": "devs", "roles": ["member"]},
                {"serviceAccount": "ci/deployer", "roles": ["member"]},
                {"serviceAccount": "bot", "roles": ["member"]},
            ]
        }
    )
    bindings = builders.role_bindings(body, spec)
    assert set(bindings) == {"ostack-admin", "ostack-member", "ostack-reader"}
    member = bindings["ostack-member"]
    assert member is not None
    assert member["roleRef"]["name"] == "ostack-member"
    assert member["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
        {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"},
        {"kind": "ServiceAccount", "name": "bot", "namespace": "demo"},
    ]
    body, spec = project({"members": [{"user": "alice", "roles": ["admin"]}]})
    bindings = builders.role_bindings(body, spec)
    assert bindings["ostack-member"] is None and bindings["ostack-reader"] is None


def test_resource_quota_counts_only_what_is_limited() -> None:
    body, spec = project({"quotas": {"instances": 10, "cores": 20, "buckets": 5}})
    rq = builders.resource_quota(body, spec)
    assert rq is not None
    assert rq["spec"]["hard"] == {
        "count/instances.compute.ostack.dev": "10",
        "count/buckets.objectstorage.ostack.dev": "5",
    }
    body, spec = project({})
    assert builders.resource_quota(body, spec) is None


def test_isolation_allows_only_the_own_namespace_and_leaves_instances_to_their_groups() -> None:
    body, spec = project({})
    policy = builders.isolation_policy(body, spec)
    not_instances = {
        "matchExpressions": [{"key": "ostack.dev/instance", "operator": "DoesNotExist"}]
    }
    assert policy["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": not_instances}]}],
    }


FLAVORS = {"m1.small": quota.Flavor(cpu=1, memory=Decimal(2 * GI))}


def test_usage_counts_flavors_and_inline_resources_as_nova_does() -> None:
    held = quota.Holdings(
        instances=[
            quota.InstanceFootprint.of({"flavor": "m1.small"}),
            quota.InstanceFootprint.of({"resources": {"cpu": 4, "memory": "8Gi"}}),
            quota.InstanceFootprint.of({"flavor": "unknown"}),
        ],
        volume_sizes=[Decimal(10 * GI)],
        snapshot_sizes=[Decimal(10 * GI)],
        buckets=1,
    )
    used = quota.usage(held, FLAVORS)
    assert used["instances"] == 3
    assert used["cores"] == 5
    assert used["ram"] == 10 * GI
    assert used["gigabytes"] == 20 * GI
    assert used["snapshots"] == 1 and used["buckets"] == 1 and used["images"] == 0


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ({"cores": Decimal(4)}, "Quota exceeded for cores: requested 4, in use 14, limit 16"),
        (
            {"ram": Decimal(4 * GI)},
            "Quota exceeded for ram: requested 4Gi, in use 38Gi, limit 40Gi",
        ),
        ({"cores": Decimal(2)}, None),
        ({"instances": Decimal(1)}, None),
    ],
)
def test_exceeded_speaks_novas_language(requested: dict, message: str | None) -> None:
    in_use = {name: Decimal(0) for name in quota.ORDER} | {
        "cores": Decimal(14),
        "ram": Decimal(38 * GI),
    }
    limits = quota.limits(
        PROJECT.spec.model_validate({"quotas": {"cores": 16, "ram": "40Gi"}}).quotas
    )
    assert quota.exceeded(requested, in_use, limits) == message


def test_usage_status_shows_quantities() -> None:
    in_use = {name: Decimal(0) for name in quota.ORDER} | {"ram": Decimal(3 * GI)}
    status = quota.usage_status(in_use, {"ram": Decimal(40 * GI)})
    assert status["ram"] == {"inUse": "3Gi", "limit": "40Gi"}
    assert status["cores"] == {"inUse": "0"}


def test_condition_keeps_its_transition_time_while_status_holds() -> None:
    first = set_condition([], "Ready", True, Reason.SUCCEEDED, "ok", 1, at="2026-01-01T00:00:00Z")
    again = set_condition(
        first, "Ready", True, Reason.SUCCEEDED, "ok", 2, at="2026-02-02T00:00:00Z"
    )
    assert again[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert again[0]["observedGeneration"] == 2
    flipped = set_condition(
        again, "Ready", False, Reason.TRANSIENT_ERROR, "x", 2, at="2026-03-03T00:00:00Z"
    )
    assert flipped[0]["lastTransitionTime"] == "2026-03-03T00:00:00Z"


def test_is_subset_ignores_what_the_server_adds() -> None:
    desired = {"metadata": {"labels": {"a": "1"}}, "spec": {"hard": {"x": "1"}}}
    current = {
        "metadata": {"labels": {"a": "1"}, "uid": "u"},
        "spec": {"hard": {"x": "1"}},
        "status": {},
    }
    assert is_subset(desired, current)
    assert not is_subset({"spec": {"hard": {"x": "2"}}}, current)
    assert not is_subset(
        {"subjects": [{"name": "a"}]}, {"subjects": [{"name": "a"}, {"name": "b"}]}
    )
