"""The upstream KubeVirt and CDI schemas are the real ones: the apiserver prunes and refuses
exactly what a real KubeVirt/CDI cluster would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration


def _vm(domain_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm"},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "spec": {
                    "domain": {
                        "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]},
                        "resources": {"requests": {"memory": "128Mi"}},
                        **(domain_extra or {}),
                    },
                    "volumes": [
                        {"name": "root", "containerDisk": {"image": "quay.io/containerdisks/x"}}
                    ],
                }
            },
        },
    }


def _create(api: client.ApiClient, namespace: str, group: str, version: str, plural: str, obj):
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, version, namespace, plural, obj, field_validation="Strict", dry_run="All"
    )


def test_valid_virtual_machine_is_accepted(api: client.ApiClient, namespace: str) -> None:
    created = _create(api, namespace, "kubevirt.io", "v1", "virtualmachines", _vm())
    assert created["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]["name"] == "root"


def test_virtual_machine_with_unknown_field_is_refused(
    api: client.ApiClient, namespace: str
) -> None:
    with pytest.raises(ApiException) as refused:
        _create(api, namespace, "kubevirt.io", "v1", "virtualmachines", _vm({"turbo": True}))
    assert refused.value.status == 400
    assert (
        'unknown field "spec.template.spec.domain.turbo"'
        in json.loads(refused.value.body)["message"]
    )


def test_data_volume_schema_is_enforced(api: client.ApiClient, namespace: str) -> None:
    dv = {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "dv"},
        "spec": {
            "source": {"http": {"url": "http://images.example.org/a.qcow2"}},
            "storage": {"resources": {"requests": {"storage": "1Gi"}}},
        },
    }
    _create(api, namespace, "cdi.kubevirt.io", "v1beta1", "datavolumes", dv)
    dv["spec"]["source"]["http"]["mirror"] = "x"
    with pytest.raises(ApiException) as refused:
        _create(api, namespace, "cdi.kubevirt.io", "v1beta1", "datavolumes", dv)
    assert "spec.source.http.mirror" in json.loads(refused.value.body)["message"]
