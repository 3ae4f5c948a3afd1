"""Glance: Images become CDI imports, on the real control plane with the status simulator
standing in for CDI, run by the real image and identity operator processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, dynamic

from operators.common.kinds import VERSION
from operators.devcluster.simulator import UPLOADED
from operators.identity.api import PROJECT
from operators.image import builders
from operators.image.api import IMAGE
from tests.support import Operator, an_event, eventually
from tests.support import read_object as get

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
CDI = ("cdi.kubevirt.io", "v1beta1")
IMAGE_BODY = {
    "apiVersion": IMAGE.api_version,
    "kind": "Image",
    "metadata": {"name": "cirros", "uid": "00000000-0000-0000-0000-000000000001"},
}


@pytest.fixture(scope="module", autouse=True)
def operators(run_operator: Callable[..., Operator], simulator: object) -> None:
    for service in ("identity", "image", "blockstorage"):
        run_operator(service)


def create_image(api: client.ApiClient, namespace: str, name: str, spec: Obj) -> None:
    body = {"apiVersion": IMAGE.api_version, "kind": "Image", "metadata": {"name": name}}
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        IMAGE.group, VERSION, namespace, IMAGE.plural, {**body, "spec": spec}
    )


def image(api: client.ApiClient, namespace: str, name: str) -> Obj:
    return get(api, IMAGE.group, VERSION, IMAGE.plural, namespace, name) or {}


def phase(api: client.ApiClient, namespace: str, name: str, wanted: str) -> Obj | None:
    obj = image(api, namespace, name)
    return obj if obj.get("status", {}).get("phase") == wanted else None


def http(url: str = "http://images.example.org/cirros.qcow2") -> Obj:
    return {"source": {"http": {"url": url}}, "diskFormat": "qcow2"}


def test_an_http_image_imports_with_progress_to_active(api: client.ApiClient, project) -> None:
    ns = project()
    create_image(api, ns, "cirros", {**http(), "minDisk": "2Gi", "checksum": "sha256:ab12"})
    seen: set[str] = set()

    def active() -> Obj | None:
        obj = image(api, ns, "cirros")
        if obj.get("status", {}).get("progress"):
            seen.add(obj["status"]["phase"])
        return phase(api, ns, "cirros", "active")

    status = eventually(active, "the image to become active")["status"]
    assert "importing" in seen, "the import's progress should show while it runs"
    assert status["progress"] == "100.0%"
    assert status["size"] == "10Gi"  # the cloud's default, which is above minDisk
    assert status["dataVolume"] == status["pvc"] == status["dataSource"] == "image-cirros"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "Succeeded"
    dv = get(api, *CDI, "datavolumes", ns, "image-cirros")
    assert dv["spec"]["source"] == {
        "http": {"url": "http://images.example.org/cirros.qcow2", "checksum": "sha256:ab12"}
    }
    assert dv["metadata"]["labels"]["ostack.dev/project"] == ns
    assert dv["metadata"]["ownerReferences"][0]["kind"] == "Image"
    data_source = get(api, *CDI, "datasources", ns, "image-cirros")
    assert data_source["spec"]["source"]["pvc"] == {"namespace": ns, "name": "image-cirros"}


def test_a_failed_import_is_killed_and_a_fixed_url_retries(api: client.ApiClient, project) -> None:
    ns = project()
    create_image(api, ns, "broken", http("http://mirror.invalid/cirros.qcow2"))
    status = eventually(lambda: phase(api, ns, "broken", "killed"), "the import to fail")["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidConfiguration"
    assert "no such host" in ready["message"] and "mirror.invalid" in ready["message"]
    an_event(api, ns, "broken", lambda e: e.reason == "ImportFailed")

    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        IMAGE.group, VERSION, ns, IMAGE.plural, "broken", {"spec": http()}
    )
    eventually(lambda: phase(api, ns, "broken", "active"), "the fixed image to import")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            {"registry": {"url": "docker://quay.io/containerdisks/fedora:40", "secretRef": "r"}},
            {"registry": {"url": "docker://quay.io/containerdisks/fedora:40", "secretRef": "r"}},
        ),
        (
            {"s3": {"url": "https://s3.example.org/images/a.img", "secretRef": "s3"}},
            {"s3": {"url": "https://s3.example.org/images/a.img", "secretRef": "s3"}},
        ),
        ({"upload": {}}, {"upload": {}}),
    ],
    ids=["registry", "s3", "upload"],
)
def test_each_source_makes_the_right_data_volume(
    api: client.ApiClient, project, source: Obj, expected: Obj
) -> None:
    ns = project()
    create_image(api, ns, "img", {"source": source, "diskFormat": "raw"})
    dv = eventually(lambda: get(api, *CDI, "datavolumes", ns, "image-img"), "the DataVolume")
    assert dv["spec"]["source"] == expected


def test_an_upload_waits_and_says_how(api: client.ApiClient, project) -> None:
    ns = project()
    create_image(api, ns, "up", {"source": {"upload": {}}, "diskFormat": "iso"})

    def told() -> Obj | None:
        status = image(api, ns, "up").get("status", {})
        return status if status.get("uploadCommand") else None

    status = eventually(told, "the upload instructions")
    assert status["phase"] == "queued"
    assert status["uploadCommand"].startswith(f"virtctl image-upload dv image-up --namespace {ns}")
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        *CDI, ns, "datavolumes", "image-up", {"metadata": {"annotations": {UPLOADED: "true"}}}
    )
    eventually(lambda: phase(api, ns, "up", "active"), "the uploaded image to become active")
    assert "uploadCommand" not in image(api, ns, "up")["status"]


def test_an_image_from_a_volume_clones_its_pvc(api: client.ApiClient, project) -> None:
    from operators.blockstorage.api import VOLUME

    ns = project()
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": VOLUME.api_version, "kind": "Volume", "metadata": {"name": "root"}}
    custom.create_namespaced_custom_object(
        VOLUME.group, VERSION, ns, VOLUME.plural, {**body, "spec": {"size": "1Gi"}}
    )
    create_image(api, ns, "snap", {"source": {"volume": {"name": "root"}}, "diskFormat": "raw"})
    dv = eventually(lambda: get(api, *CDI, "datavolumes", ns, "image-snap"), "the clone")
    assert dv["spec"]["source"] == {"pvc": {"namespace": ns, "name": "volume-root"}}
    eventually(lambda: phase(api, ns, "snap", "active"), "the cloned image to become active")


def test_properties_become_the_preference(api: client.ApiClient, project) -> None:
    ns = project()
    spec = {
        **http(),
        "minRam": "1Gi",
        "properties": {"hw_firmware_type": "uefi", "hw_disk_bus": "sata", "os_type": "windows"},
    }
    create_image(api, ns, "win", spec)
    pref = eventually(
        lambda: get(
            api, "instancetype.kubevirt.io", "v1beta1", "virtualmachinepreferences", ns, "image-win"
        ),
        "the preference",
    )
    assert pref["spec"]["firmware"] == {"preferredUseEfi": True}
    assert pref["spec"]["devices"] == {"preferredDiskBus": "sata"}
    assert pref["spec"]["requirements"] == {"memory": {"guest": "1Gi"}}
    assert pref["spec"]["features"]["preferredHyperv"]["relaxed"] == {}
    eventually(
        lambda: image(api, ns, "win").get("status", {}).get("preference") == "image-win",
        "status.preference",
    )


def _can_clone(api: client.ApiClient, namespace: str, source_ns: str, pvc: str) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{namespace}:default",
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": {
                    "namespace": source_ns,
                    "verb": "create",
                    "group": "cdi.kubevirt.io",
                    "resource": "datavolumes",
                    "subresource": "source",
                    "name": pvc,
                },
            },
        }
    )
    return bool(review.status.allowed)


def test_visibility_grants_clones_to_exactly_who_may_use_the_image(
    api: client.ApiClient, project
) -> None:
    owner, friend, stranger = project(), project(), project()
    create_image(api, owner, "private", http())
    create_image(api, owner, "public", {**http(), "visibility": "public"})
    create_image(api, owner, "shared", {**http(), "visibility": "shared", "sharedWith": [friend]})
    for name in ("private", "public", "shared"):
        eventually(lambda name=name: phase(api, owner, name, "active"), f"{name} active")

    assert eventually(lambda: _can_clone(api, stranger, owner, "image-public"), "the public grant")
    assert eventually(lambda: _can_clone(api, friend, owner, "image-shared"), "the shared grant")
    assert not _can_clone(api, stranger, owner, "image-shared")
    assert not _can_clone(api, friend, owner, "image-private")
    assert not _can_clone(api, stranger, owner, "image-private")
    # The grant names the image's own PVC and nothing else in the Project.
    assert not _can_clone(api, stranger, owner, "image-private-other")

    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        IMAGE.group, VERSION, owner, IMAGE.plural, "public", {"spec": {"visibility": "private"}}
    )
    eventually(
        lambda: not _can_clone(api, stranger, owner, "image-public"),
        "the grant to go when the image becomes private",
    )


def test_an_image_being_copied_cannot_be_deleted(api: client.ApiClient, project) -> None:
    owner, other = project(), project()
    create_image(api, owner, "base", {**http(), "visibility": "public"})
    eventually(lambda: phase(api, owner, "base", "active"), "the image")
    clone = {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {
            "name": "copy",
            # The simulator's stand-in for a copy that has not finished.
            "annotations": {"sim.ostack.dev/fail-import": "still copying"},
        },
        "spec": {
            "source": {
                "pvc": {
                    "namespace": owner,
                    "name": builders.object_name({"metadata": {"name": "base"}}),
                }
            },
            "storage": {"resources": {"requests": {"storage": "10Gi"}}},
        },
    }
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(*CDI, other, "datavolumes", clone)
    eventually(
        lambda: (get(api, *CDI, "datavolumes", other, "copy") or {}).get("status"),
        "the copy to be under way (and seen by the operator's watch)",
    )
    custom.delete_namespaced_custom_object(IMAGE.group, VERSION, owner, IMAGE.plural, "base")

    def refused() -> bool:
        events = client.CoreV1Api(api).list_namespaced_event(
            owner, field_selector="involvedObject.name=base"
        )
        return any(
            e.reason == "DeletionRefused" and f"{other}/copy" in e.message for e in events.items
        )

    eventually(refused, "the deletion to be refused while the copy runs")
    assert image(api, owner, "base"), "the image must still be there"
    custom.delete_namespaced_custom_object(*CDI, other, "datavolumes", "copy")
    eventually(lambda: not image(api, owner, "base"), "the image to go once nothing copies it")


@pytest.mark.parametrize(
    "source",
    [
        {"http": {"url": "http://x.example/a.img", "secretRef": "s", "certConfigMap": "c"}},
        {"registry": {"url": "docker://quay.io/c/f:40", "secretRef": "s", "certConfigMap": "c"}},
        {"s3": {"url": "s3://bucket/a.img", "secretRef": "s", "certConfigMap": "c"}},
        {"upload": {}},
        {"volume": {"name": "root"}},
    ],
    ids=["http", "registry", "s3", "upload", "volume"],
)
def test_what_an_image_becomes_passes_the_real_schemas_strictly(
    api: client.ApiClient, namespace: str, source: Obj
) -> None:
    from operators.image.api import ImageSpec

    spec = ImageSpec.model_validate(
        {
            "source": source,
            "diskFormat": "qcow2",
            "minRam": "1Gi",
            "visibility": "public",
            "properties": {"hw_firmware_type": "uefi", "hw_disk_bus": "scsi", "os_type": "windows"},
            **({"checksum": "sha256:00"} if "http" in source else {}),
        }
    )
    body = {**IMAGE_BODY, "metadata": {**IMAGE_BODY["metadata"], "namespace": namespace}}
    objects = [
        builders.data_volume(body, "p", spec, "10Gi", "volume-root"),
        builders.data_source(body, "p"),
        builders.preference(body, "p", spec),
        *builders.clone_grant(body, "p", spec, {}),
    ]
    dynamic_client = dynamic.DynamicClient(api)
    for obj in objects:
        assert obj is not None
        found = dynamic_client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        obj["metadata"]["namespace"] = namespace
        dynamic_client.request(
            "POST",
            f"{found.path(namespace=namespace)}?dryRun=All&fieldValidation=Strict",
            body=obj,
            content_type="application/json",
        )


def test_a_project_watched_by_two_operators_stays_still(api: client.ApiClient, project) -> None:
    """identity holds Projects, image only watches them: neither may undo the other's
    bookkeeping (a shared finalizer name once made them rewrite Projects endlessly)."""
    import time

    name = project()

    def metadata() -> Obj:
        return client.CustomObjectsApi(api).get_cluster_custom_object(
            PROJECT.group, VERSION, PROJECT.plural, name
        )["metadata"]

    # Settled: identity's handler has finished and recorded what it handled.
    handled = "identity.ostack.dev/last-handled-configuration"
    settled = eventually(
        lambda: handled in (metadata().get("annotations") or {}) and metadata(),
        "identity to finish handling the Project",
    )["resourceVersion"]
    time.sleep(2)  # a window in which nothing should happen, not a wait for something
    assert metadata()["resourceVersion"] == settled
