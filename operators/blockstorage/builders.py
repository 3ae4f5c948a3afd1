"""Pure builders: a Volume or Snapshot in, the PVC, DataVolume or VolumeSnapshot out."""

from __future__ import annotations

from typing import Any

from operators.blockstorage.api import VolumeSpec
from operators.blockstorage.types import VolumeType
from operators.common import children


def claim_name(volume_name: str) -> str:
    """The PVC (and DataVolume) of a Volume; prefixed so it never collides with an Image's."""
    return f"volume-{volume_name}"


def snapshot_name(snapshot: str) -> str:
    return f"snapshot-{snapshot}"


def access_modes(spec: VolumeSpec, kind: VolumeType) -> list[str]:
    # A disk shared by several VMs must be writable from several nodes.
    return ["ReadWriteMany"] if spec.multiattach else list(kind.access_modes)


def _storage(spec: VolumeSpec, kind: VolumeType) -> dict[str, Any]:
    storage: dict[str, Any] = {
        "accessModes": access_modes(spec, kind),
        "volumeMode": spec.volume_mode,
        "resources": {"requests": {"storage": spec.size}},
    }
    if kind.storage_class:
        storage["storageClassName"] = kind.storage_class
    return storage


def claim(volume: dict[str, Any], project: str, spec: VolumeSpec, kind: VolumeType) -> dict:
    """A blank Volume: just a PVC."""
    meta = volume["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": children.child_metadata(
            volume, project, claim_name(meta["name"]), meta["namespace"]
        ),
        "spec": _storage(spec, kind),
    }


def data_volume(
    volume: dict[str, Any],
    project: str,
    spec: VolumeSpec,
    kind: VolumeType,
    source: dict[str, Any],
) -> dict[str, Any]:
    """A Volume filled from something: a CDI DataVolume, whose PVC has the same name.
    `source` is the resolved DataVolume source (or `{"sourceRef": ...}`)."""
    meta = volume["metadata"]
    spec_body: dict[str, Any] = {"storage": _storage(spec, kind)}
    spec_body.update(source)
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": children.child_metadata(
            volume, project, claim_name(meta["name"]), meta["namespace"]
        ),
        "spec": spec_body,
    }


def volume_snapshot(
    snapshot: dict[str, Any], project: str, volume_name: str, kind: VolumeType
) -> dict[str, Any]:
    meta = snapshot["metadata"]
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": claim_name(volume_name)}}
    if kind.snapshot_class:
        spec["volumeSnapshotClassName"] = kind.snapshot_class
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": children.child_metadata(
            snapshot, project, snapshot_name(meta["name"]), meta["namespace"]
        ),
        "spec": spec,
    }
