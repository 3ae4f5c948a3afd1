"""Cinder: Volumes and Snapshots, on the real control plane with the simulator standing in
for CDI and the CSI driver, run by the real operator processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operators.blockstorage.api import SNAPSHOT, VOLUME
from operators.common.kinds import VERSION
from operators.compute.api import INSTANCE
from operators.image.api import IMAGE
from tests.support import Operator, eventually, read_object
from tests.support import create_object as make
from tests.support import patch_spec as patch
from tests.support import read_object as raw

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


@pytest.fixture(scope="module", autouse=True)
def operators(run_operator: Callable[..., Operator], simulator: object) -> None:
    for service in ("identity", "image", "compute", "blockstorage"):
        run_operator(service)


def get(api: client.ApiClient, kind, namespace: str, name: str) -> Obj:
    return read_object(api, kind.group, VERSION, kind.plural, namespace, name) or {}


def phase(api: client.ApiClient, kind, ns: str, name: str, wanted: str) -> Obj | None:
    obj = get(api, kind, ns, name)
    return obj if obj.get("status", {}).get("phase") == wanted else None


def test_a_blank_volume_is_a_pvc_that_can_grow_but_not_shrink(
    api: client.ApiClient, project
) -> None:
    ns = project()
    make(api, VOLUME, ns, "data", {"size": "1Gi"})
    status = eventually(lambda: phase(api, VOLUME, ns, "data", "available"), "available")["status"]
    assert status["pvc"] == "volume-data" and status["capacity"] == "1Gi"
    claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("volume-data", ns)
    assert claim.spec.volume_mode == "Block"
    assert claim.metadata.owner_references[0].kind == "Volume"

    patch(api, VOLUME, ns, "data", {"size": "3Gi"})
    eventually(
        lambda: (
            (v := phase(api, VOLUME, ns, "data", "available"))
            and v["status"].get("capacity") == "3Gi"
        ),
        "the extended capacity",
    )
    with pytest.raises(ApiException) as shrink:
        patch(api, VOLUME, ns, "data", {"size": "2Gi"})
    assert "may only grow" in shrink.value.body


def test_an_unknown_type_is_refused_with_the_known_ones(api: client.ApiClient, project) -> None:
    ns = project()
    make(api, VOLUME, ns, "odd", {"size": "1Gi", "volumeType": "platinum"})
    obj = eventually(lambda: phase(api, VOLUME, ns, "odd", "error"), "the refusal")
    ready = obj["status"]["conditions"][0]
    assert ready["reason"] == "InvalidConfiguration"
    assert "unknown volume type platinum (volume types: standard)" in ready["message"]


def test_volumes_from_an_image_a_volume_and_a_snapshot(api: client.ApiClient, project) -> None:
    ns = project()
    make(
        api,
        IMAGE,
        ns,
        "cirros",
        {"source": {"http": {"url": "http://x.example/c.img"}}, "diskFormat": "qcow2"},
    )
    make(api, VOLUME, ns, "boot", {"size": "2Gi", "source": {"image": {"name": "cirros"}}})
    eventually(lambda: phase(api, VOLUME, ns, "boot", "available"), "the Volume from the Image")
    dv = raw(api, "cdi.kubevirt.io", "v1beta1", "datavolumes", ns, "volume-boot")
    assert dv["spec"]["sourceRef"] == {
        "kind": "DataSource",
        "namespace": ns,
        "name": "image-cirros",
    }

    make(api, VOLUME, ns, "copy", {"size": "2Gi", "source": {"volume": {"name": "boot"}}})
    eventually(lambda: phase(api, VOLUME, ns, "copy", "available"), "the clone")
    dv = raw(api, "cdi.kubevirt.io", "v1beta1", "datavolumes", ns, "volume-copy")
    assert dv["spec"]["source"] == {"pvc": {"namespace": ns, "name": "volume-boot"}}

    make(api, SNAPSHOT, ns, "snap", {"volume": {"name": "boot"}})
    snap = eventually(lambda: phase(api, SNAPSHOT, ns, "snap", "available"), "the Snapshot")
    assert snap["status"]["volumeSnapshot"] == "snapshot-snap"
    vs = raw(api, "snapshot.storage.k8s.io", "v1", "volumesnapshots", ns, "snapshot-snap")
    assert vs["spec"]["source"] == {"persistentVolumeClaimName": "volume-boot"}
    make(api, VOLUME, ns, "restored", {"size": "2Gi", "source": {"snapshot": {"name": "snap"}}})
    dv = eventually(
        lambda: raw(api, "cdi.kubevirt.io", "v1beta1", "datavolumes", ns, "volume-restored"),
        "the restore",
    )
    assert dv["spec"]["source"] == {"snapshot": {"namespace": ns, "name": "snapshot-snap"}}

    # Cinder refuses to delete a Volume with Snapshots until they are gone.
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        VOLUME.group, VERSION, ns, VOLUME.plural, "boot"
    )
    eventually(lambda: _refused(api, ns, "boot", "Snapshot(s) snap"), "the refusal")
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        SNAPSHOT.group, VERSION, ns, SNAPSHOT.plural, "snap"
    )
    eventually(lambda: not get(api, VOLUME, ns, "boot"), "the Volume to go after its Snapshot")


def _refused(api: client.ApiClient, ns: str, name: str, words: str) -> bool:
    events = client.CoreV1Api(api).list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}"
    )
    return any(e.reason == "DeletionRefused" and words in e.message for e in events.items)


def test_attach_detach_double_attach_and_deletion_while_attached(
    api: client.ApiClient, project
) -> None:
    ns = project()
    make(
        api,
        IMAGE,
        ns,
        "cirros",
        {"source": {"http": {"url": "http://x.example/c.img"}}, "diskFormat": "qcow2"},
    )
    make(api, VOLUME, ns, "data", {"size": "1Gi"})
    make(api, VOLUME, ns, "shared", {"size": "1Gi", "multiattach": True})
    server = {"flavor": "m1.tiny", "image": {"name": "cirros"}}
    make(api, INSTANCE, ns, "one", server)
    eventually(lambda: phase(api, INSTANCE, ns, "one", "ACTIVE"), "the Instance running")

    patch(api, INSTANCE, ns, "one", {"volumes": [{"name": "data"}, {"name": "shared"}]})

    def plugged() -> Obj | None:
        vm = raw(api, "kubevirt.io", "v1", "virtualmachines", ns, "one")
        volumes = {v["name"]: v for v in vm["spec"]["template"]["spec"]["volumes"]}
        return volumes if "volume-data" in volumes and "volume-shared" in volumes else None

    volumes = eventually(plugged, "the Volumes hot-plugged into the VM")
    assert volumes["volume-data"]["persistentVolumeClaim"] == {
        "claimName": "volume-data",
        "hotpluggable": True,
    }
    vm = raw(api, "kubevirt.io", "v1", "virtualmachines", ns, "one")
    disks = {d["name"]: d for d in vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"]}
    assert disks["volume-shared"]["shareable"] is True
    status = eventually(lambda: phase(api, VOLUME, ns, "data", "in-use"), "in-use")["status"]
    assert status["attachments"] == [{"instance": "one", "device": "volume-data"}]

    make(api, INSTANCE, ns, "two", {**server, "volumes": [{"name": "data"}]})
    obj = eventually(lambda: phase(api, INSTANCE, ns, "two", "ERROR"), "the double attach refused")
    assert (
        "Volume data is attached to Instance one and is not multiattach"
        in obj["status"]["conditions"][0]["message"]
    )
    patch(api, INSTANCE, ns, "two", {"volumes": [{"name": "shared"}]})
    eventually(lambda: phase(api, INSTANCE, ns, "two", "ACTIVE"), "a multiattach Volume on two")
    eventually(
        lambda: len(get(api, VOLUME, ns, "shared")["status"].get("attachments") or []) == 2,
        "the shared Volume attached to both",
    )

    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        VOLUME.group, VERSION, ns, VOLUME.plural, "data"
    )
    eventually(lambda: _refused(api, ns, "data", "Instance(s) one"), "deletion refused")
    assert get(api, VOLUME, ns, "data"), "the attached Volume must stay"
    patch(api, INSTANCE, ns, "one", {"volumes": [{"name": "shared"}]})
    eventually(lambda: not get(api, VOLUME, ns, "data"), "the detached Volume to go")
    vm = raw(api, "kubevirt.io", "v1", "virtualmachines", ns, "one")
    assert "volume-data" not in {v["name"] for v in vm["spec"]["template"]["spec"]["volumes"]}


@pytest.mark.parametrize(
    "source",
    [
        None,
        {"sourceRef": {"kind": "DataSource", "namespace": "images", "name": "image-cirros"}},
        {"source": {"pvc": {"namespace": "ns", "name": "volume-a"}}},
        {"source": {"snapshot": {"namespace": "ns", "name": "snapshot-a"}}},
    ],
    ids=["blank", "image", "volume", "snapshot"],
)
def test_what_a_volume_becomes_passes_the_real_schemas_strictly(
    api: client.ApiClient, namespace: str, source: Obj | None
) -> None:
    from kubernetes import dynamic

    from operators.blockstorage import builders
    from operators.blockstorage.api import VolumeSpec
    from operators.blockstorage.types import VolumeType

    body = {
        "apiVersion": VOLUME.api_version,
        "kind": "Volume",
        "metadata": {
            "name": "v",
            "namespace": namespace,
            "uid": "00000000-0000-0000-0000-000000000001",
        },
    }
    spec = VolumeSpec.model_validate({"size": "1Gi", "multiattach": True})
    kind = VolumeType("fast", "ssd", "ssd-snapshots")
    objects = [
        builders.claim(body, "p", spec, kind)
        if source is None
        else builders.data_volume(body, "p", spec, kind, source),
        builders.volume_snapshot({**body, "kind": "Snapshot"}, "p", "v", kind),
    ]
    dynamic_client = dynamic.DynamicClient(api)
    for obj in objects:
        found = dynamic_client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        dynamic_client.request(
            "POST",
            f"{found.path(namespace=namespace)}?dryRun=All&fieldValidation=Strict",
            body=obj,
            content_type="application/json",
        )
