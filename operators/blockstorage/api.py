"""Cinder's API: Volumes (block devices for Instances) and their Snapshots."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.common.kinds import AGE, PHASE, READY, Column, Kind
from operators.common.refs import LocalRef, ProjectRef
from operators.common.schema import (
    ApiModel,
    Name,
    Quantity,
    Rule,
    at_most_one,
    count_set,
    quantity_value,
)
from operators.common.status import Status

GROUP = "blockstorage.ostack.dev"


class VolumeSource(ApiModel):
    """What a new Volume is filled from; at most one. A Volume without a source is blank."""

    rules = (
        Rule(
            cel=at_most_one("image", "volume", "snapshot"),
            message="a Volume is created from at most one of image, volume or snapshot",
            check=lambda s: count_set(s, "image", "volume", "snapshot") <= 1,
        ),
    )

    image: ProjectRef | None = None
    """An Image to copy (public, community or shared Images of other Projects too)."""
    volume: LocalRef | None = None
    """A Volume of this Project to clone."""
    snapshot: LocalRef | None = None
    """A Snapshot of this Project to restore."""


def _not_shrunk(old: VolumeSpec, new: VolumeSpec) -> bool:
    return quantity_value(new.size) >= quantity_value(old.size)


class VolumeSpec(ApiModel):
    """A block device: a PVC, blank or filled from an Image, Volume or Snapshot."""

    rules = (
        Rule(
            cel="quantity(string(self.size)).isGreaterThan(quantity('0'))",
            message="size must be greater than zero",
            check=lambda s: quantity_value(s.size) > 0,
        ),
        Rule(
            cel="quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) >= 0",
            message="a Volume can be extended but not shrunk: size may only grow",
            transition=_not_shrunk,
        ),
        Rule(
            cel="self.source == oldSelf.source",
            message="source cannot change once the Volume exists; create a new Volume",
            transition=lambda old, new: old.source == new.source,
        ),
    )

    size: Quantity
    """Capacity, e.g. `10Gi`. Growing it extends the Volume; shrinking is refused."""
    volume_type: Name | None = None
    """The volume type, which the cloud operator maps to a StorageClass (`kubectl get cm
    -n ostack-system ostack-volume-types`); the operator's default type when unset."""
    # The explicit `{}` default makes the apiserver store it, so the transition rule above
    # can compare sources without guarding for absence.
    source: VolumeSource = Field(default_factory=VolumeSource, json_schema_extra={"default": {}})
    """What the Volume is filled from; blank when empty."""
    multiattach: bool = False
    """Allow attaching to several Instances at once (ReadWriteMany, shareable disk)."""
    bootable: bool = False
    """Marks the Volume as bootable, as Cinder's flag does; Volumes from Images are
    bootable whatever this says."""
    volume_mode: Literal["Block", "Filesystem"] = "Block"
    """The PVC's volume mode: Block (what VM disks want) or Filesystem."""


class Attachment(ApiModel):
    """An Instance the Volume is attached to."""

    instance: str
    """The Instance's name."""
    device: str | None = None
    """The disk's name in the Instance's VirtualMachine."""


class VolumeStatus(Status):
    """Observed state of a Volume."""

    phase: Literal["creating", "available", "in-use", "extending", "error", "deleting"] | None = (
        None
    )
    """creating, available, in-use, extending, error or deleting."""
    attachments: list[Attachment] | None = Field(default=None, max_length=64)
    """The Instances using the Volume."""
    pvc: str | None = None
    """The PVC holding the Volume."""
    capacity: Quantity | None = None
    """The PVC's actual capacity."""
    storage_class: str | None = None
    """The StorageClass the volume type resolved to."""


VOLUME = Kind(
    group=GROUP,
    kind="Volume",
    doc="A Cinder volume: a block device (a PVC) for Instances, blank or created from an"
    " Image, a Volume or a Snapshot; extendable and attachable.",
    plural="volumes",
    short_names=("vol",),
    spec=VolumeSpec,
    status=VolumeStatus,
    columns=(
        PHASE,
        READY,
        Column("Size", ".spec.size", description="Requested capacity"),
        Column("Type", ".spec.volumeType", description="Volume type"),
        Column("Attached", ".status.attachments[*].instance", description="Instances using it"),
        AGE,
    ),
)


class SnapshotSpec(ApiModel):
    """A point-in-time copy of a Volume."""

    rules = (
        Rule(
            cel="self.volume == oldSelf.volume",
            message="a Snapshot's volume cannot change; create a new Snapshot",
            transition=lambda old, new: old.volume == new.volume,
        ),
    )

    volume: LocalRef
    """The Volume to snapshot."""
    description: str | None = Field(default=None, max_length=255)
    """Free text describing the Snapshot."""


class SnapshotStatus(Status):
    """Observed state of a Snapshot."""

    phase: Literal["creating", "available", "error", "deleting"] | None = None
    """creating, available, error or deleting."""
    volume_snapshot: str | None = None
    """The VolumeSnapshot holding the copy."""
    size: Quantity | None = None
    """The size of the snapshotted Volume."""


SNAPSHOT = Kind(
    group=GROUP,
    kind="Snapshot",
    doc="A Cinder volume snapshot: a VolumeSnapshot of a Volume's PVC, from which new"
    " Volumes can be restored.",
    plural="snapshots",
    short_names=("snap",),
    spec=SnapshotSpec,
    status=SnapshotStatus,
    columns=(
        PHASE,
        READY,
        Column("Volume", ".spec.volume.name", description="The snapshotted Volume"),
        Column("Size", ".status.size", description="Size of the snapshot"),
        AGE,
    ),
)

KINDS = (VOLUME, SNAPSHOT)
