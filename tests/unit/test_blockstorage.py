"""The block storage service's pure parts: volume types and what a Volume becomes."""

from __future__ import annotations

import pytest

from operators.blockstorage import builders, types
from operators.blockstorage.api import VolumeSpec

BODY = {
    "apiVersion": "blockstorage.ostack.dev/v1alpha1",
    "kind": "Volume",
    "metadata": {"name": "data", "namespace": "demo", "uid": "u-1"},
}
CONFIG = """
default: standard
types:
  standard: {storageClass: standard, snapshotClass: snaps}
  archive: {storageClass: slow, accessModes: [ReadWriteMany], extendable: false}
"""


def test_types_come_from_the_operators_config() -> None:
    catalogue = types.parse(CONFIG)
    assert catalogue.resolve(None).storage_class == "standard"
    archive = catalogue.resolve("archive")
    assert archive.access_modes == ("ReadWriteMany",) and archive.extendable is False
    with pytest.raises(
        ValueError, match=r"unknown volume type gold \(volume types: archive, standard\)"
    ):
        catalogue.resolve("gold")


def test_without_config_one_standard_type_uses_the_default_class() -> None:
    standard = types.BUILT_IN.resolve(None)
    assert standard.name == "standard" and standard.storage_class is None


def test_a_blank_volume_is_a_block_pvc_owned_by_the_volume() -> None:
    spec = VolumeSpec.model_validate({"size": "10Gi"})
    claim = builders.claim(BODY, "demo", spec, types.parse(CONFIG).resolve(None))
    assert claim["metadata"]["name"] == "volume-data"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Block",
        "resources": {"requests": {"storage": "10Gi"}},
        "storageClassName": "standard",
    }


def test_multiattach_asks_for_read_write_many() -> None:
    spec = VolumeSpec.model_validate(
        {"size": "1Gi", "multiattach": True, "volumeMode": "Filesystem"}
    )
    claim = builders.claim(BODY, "demo", spec, types.BUILT_IN.resolve(None))
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["volumeMode"] == "Filesystem"


def test_a_snapshot_uses_its_types_snapshot_class() -> None:
    snapshot = {**BODY, "kind": "Snapshot", "metadata": {**BODY["metadata"], "name": "s1"}}
    vs = builders.volume_snapshot(snapshot, "demo", "data", types.parse(CONFIG).resolve(None))
    assert vs["metadata"]["name"] == "snapshot-s1"
    assert vs["spec"] == {
        "source": {"persistentVolumeClaimName": "volume-data"},
        "volumeSnapshotClassName": "snaps",
    }
