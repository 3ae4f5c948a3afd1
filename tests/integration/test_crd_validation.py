"""The CRDs' schemas and CEL rules, through the real apiserver.

The same tables as tests/unit/test_api_models.py: what the models accept the apiserver
accepts, and what they refuse it refuses with the same message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.common.kinds import VERSION, Kind
from tests.cases import ACCEPTED, REFUSED, TRANSITIONS, Case

pytestmark = pytest.mark.integration


def _create(
    api: client.ApiClient, kind: Kind, namespace: str, obj: dict[str, Any], dry_run: bool = True
) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)
    extra = {"dry_run": "All"} if dry_run else {}
    if kind.namespaced:
        return custom.create_namespaced_custom_object(
            kind.group, VERSION, namespace, kind.plural, obj, field_validation="Strict", **extra
        )
    return custom.create_cluster_custom_object(
        kind.group, VERSION, kind.plural, obj, field_validation="Strict", **extra
    )


def _refusal(call, status: int = 422) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == status, refused.value.body
    return json.loads(refused.value.body)["message"]


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.id)
def test_apiserver_accepts(api: client.ApiClient, namespace: str, case: Case) -> None:
    _create(api, case.kind, namespace, case.object())


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_apiserver_refuses_with_the_models_message(
    api: client.ApiClient, namespace: str, case: Case
) -> None:
    message = _refusal(lambda: _create(api, case.kind, namespace, case.object()))
    assert case.message in message


@pytest.mark.parametrize("case", TRANSITIONS, ids=lambda c: c.id)
def test_apiserver_refuses_transition(api: client.ApiClient, namespace: str, case: Case) -> None:
    assert case.old is not None
    name = f"t-{namespace}"
    old = {**case.object(case.old), "metadata": {"name": name}}
    _create(api, case.kind, namespace, old, dry_run=False)
    custom = client.CustomObjectsApi(api)
    patch = {"spec": case.spec}
    if case.kind.namespaced:
        update = lambda: custom.patch_namespaced_custom_object(  # noqa: E731
            case.kind.group, VERSION, namespace, case.kind.plural, name, patch
        )
    else:
        update = lambda: custom.patch_cluster_custom_object(  # noqa: E731
            case.kind.group, VERSION, case.kind.plural, name, patch
        )
    try:
        assert case.message in _refusal(update)
    finally:
        if not case.kind.namespaced:
            custom.delete_cluster_custom_object(case.kind.group, VERSION, case.kind.plural, name)


def test_unknown_field_refused_under_strict_validation(
    api: client.ApiClient, namespace: str
) -> None:
    case = ACCEPTED[0]
    obj = case.object({"tenantColour": "blue"})
    # Strict field validation answers 400 Bad Request, naming the field.
    message = _refusal(lambda: _create(api, case.kind, namespace, obj), status=400)
    assert 'unknown field "spec.tenantColour"' in message


def test_volume_can_grow(api: client.ApiClient, namespace: str) -> None:
    from operators.blockstorage.api import VOLUME

    obj = {
        "apiVersion": VOLUME.api_version,
        "kind": "Volume",
        "metadata": {"name": "grows"},
        "spec": {"size": "1Gi"},
    }
    _create(api, VOLUME, namespace, obj, dry_run=False)
    grown = client.CustomObjectsApi(api).patch_namespaced_custom_object(
        VOLUME.group, VERSION, namespace, VOLUME.plural, "grows", {"spec": {"size": "2Gi"}}
    )
    assert grown["spec"]["size"] == "2Gi"
    assert grown["spec"]["volumeMode"] == "Block", "schema defaults apply"
