"""The image service's pure parts: what an Image becomes and how its state is read."""

from __future__ import annotations

import pytest

from operators.common.status import Reason
from operators.image import builders, lifecycle
from operators.image.api import IMAGE, ImageSpec

IMAGE_BODY = {
    "apiVersion": IMAGE.api_version,
    "kind": "Image",
    "metadata": {"name": "cirros", "namespace": "demo", "uid": "u-1"},
}


def spec(**fields) -> ImageSpec:
    base = {"source": {"http": {"url": "http://x.example/c.img"}}, "diskFormat": "qcow2"}
    return ImageSpec.model_validate({**base, **fields})


def test_import_size_is_the_default_unless_min_disk_is_larger() -> None:
    assert builders.import_size(spec(), "10Gi") == "10Gi"
    assert builders.import_size(spec(minDisk="1Gi"), "10Gi") == "10Gi"
    assert builders.import_size(spec(minDisk="40Gi"), "10Gi") == "40Gi"


def test_data_volume_is_owned_labelled_and_bound_at_once() -> None:
    dv = builders.data_volume(IMAGE_BODY, "demo-project", spec(checksum="md5:ab"), "10Gi")
    assert dv["metadata"]["name"] == "image-cirros"
    assert dv["metadata"]["labels"]["ostack.dev/project"] == "demo-project"
    assert dv["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert dv["metadata"]["annotations"] == {
        "cdi.kubevirt.io/storage.bind.immediate.requested": "true"
    }
    assert dv["spec"]["source"] == {"http": {"url": "http://x.example/c.img", "checksum": "md5:ab"}}
    assert dv["spec"]["storage"] == {"resources": {"requests": {"storage": "10Gi"}}}


def test_a_volume_source_clones_without_a_size() -> None:
    dv = builders.data_volume(
        IMAGE_BODY, "p", spec(source={"volume": {"name": "root"}}), "10Gi", "volume-root"
    )
    assert dv["spec"]["source"] == {"pvc": {"namespace": "demo", "name": "volume-root"}}
    assert dv["spec"]["storage"] == {}


def test_preference_only_when_something_maps() -> None:
    assert builders.preference(IMAGE_BODY, "p", spec(properties={"os_distro": "cirros"})) is None
    pref = builders.preference_spec(
        spec(properties={"hw_firmware_type": "bios", "hw_vif_model": "e1000"}, minRam="512Mi")
    )
    assert pref == {
        "firmware": {"preferredUseBios": True},
        "devices": {"preferredInterfaceModel": "e1000"},
        "requirements": {"memory": {"guest": "512Mi"}},
    }


@pytest.mark.parametrize(
    ("fields", "groups"),
    [
        ({}, None),
        ({"visibility": "public"}, ["system:authenticated"]),
        ({"visibility": "community"}, ["system:authenticated"]),
        (
            {"visibility": "shared", "sharedWith": ["b", "a", "gone"]},
            ["system:serviceaccounts:ns-a", "system:serviceaccounts:ns-b"],
        ),
        ({"visibility": "shared", "sharedWith": ["gone"]}, None),
    ],
    ids=["private", "public", "community", "shared", "shared-with-unknown"],
)
def test_clone_grant_follows_visibility(fields, groups) -> None:
    grant = builders.clone_grant(IMAGE_BODY, "p", spec(**fields), {"a": "ns-a", "b": "ns-b"})
    if groups is None:
        assert grant is None
        return
    role, binding = grant
    assert role["rules"] == [
        {
            "apiGroups": ["cdi.kubevirt.io"],
            "resources": ["datavolumes/source"],
            "resourceNames": ["image-cirros"],
            "verbs": ["create"],
        }
    ]
    assert [s["name"] for s in binding["subjects"]] == groups


def dv(phase: str, progress: str | None = None, running: dict | None = None) -> dict:
    status: dict = {"phase": phase}
    if progress:
        status["progress"] = progress
    if running:
        status["conditions"] = [{"type": "Running", **running}]
    return {"status": status}


@pytest.mark.parametrize(
    ("data_volume", "upload", "phase", "reason"),
    [
        (None, False, "queued", Reason.PROGRESSING),
        (dv("ImportScheduled"), False, "queued", Reason.PROGRESSING),
        (dv("UploadReady"), True, "queued", Reason.PROGRESSING),
        (dv("ImportInProgress", "45.20%"), False, "importing", Reason.PROGRESSING),
        (
            dv("ImportInProgress", "3%", {"status": "False", "reason": "Error", "message": "x"}),
            False,
            "importing",
            Reason.TRANSIENT_ERROR,
        ),
        (dv("Succeeded", "100.0%"), False, "active", Reason.SUCCEEDED),
        (
            dv("Failed", None, {"status": "False", "reason": "Error", "message": "no such host"}),
            False,
            "killed",
            Reason.INVALID_CONFIGURATION,
        ),
    ],
)
def test_glance_phase_from_cdi(data_volume, upload, phase, reason) -> None:
    observed = lifecycle.observe(data_volume, upload)
    assert observed.phase == phase
    assert observed.ready[1] == reason


def test_killed_says_what_cdi_said() -> None:
    observed = lifecycle.observe(
        dv("Failed", None, {"status": "False", "reason": "Error", "message": "lookup a.invalid"}),
        False,
    )
    assert "lookup a.invalid" in observed.ready[2]


@pytest.mark.parametrize(
    ("fields", "project", "allowed"),
    [
        ({}, "owner", True),
        ({}, "other", False),
        ({"visibility": "public"}, "other", True),
        ({"visibility": "community"}, "other", True),
        ({"visibility": "shared", "sharedWith": ["other"]}, "other", True),
        ({"visibility": "shared", "sharedWith": ["other"]}, "third", False),
    ],
)
def test_who_may_use_an_image(fields, project, allowed) -> None:
    refusal = lifecycle.refusal(spec(**fields), "cirros", "owner", project)
    assert (refusal is None) == allowed
    if refusal:
        assert "not shared with Project" in refusal
