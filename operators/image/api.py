"""Glance's API: the Image, a bootable disk image imported by CDI."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.common.kinds import AGE, PHASE, READY, Column, Kind
from operators.common.refs import LocalRef
from operators.common.schema import (
    LIST_SET,
    ApiModel,
    Name,
    Quantity,
    Rule,
    count_set,
    exactly_one,
)
from operators.common.status import Status

GROUP = "image.ostack.dev"

UNBOOTABLE_FORMATS = ("aki", "ari", "ami")
DiskFormat = Literal["qcow2", "raw", "iso", "vmdk", "vdi", "vhd", "vhdx", "aki", "ari", "ami"]

# Image properties with a fixed set of values, as Glance's metadata definitions give them;
# they become the KubeVirt preference Instances inherit.
PROPERTY_VALUES: dict[str, tuple[str, ...]] = {
    "hw_firmware_type": ("bios", "uefi"),
    "hw_disk_bus": ("virtio", "sata", "scsi"),
    "hw_cdrom_bus": ("sata", "scsi"),
    "hw_vif_model": ("virtio", "e1000", "e1000e", "rtl8139"),
    "os_type": ("linux", "windows"),
}


class HttpSource(ApiModel):
    """Import from an HTTP(S) server."""

    url: str = Field(max_length=2048, pattern=r"^https?://[^\s]+$")
    """The image file's URL."""
    cert_config_map: Name | None = None
    """A ConfigMap holding the CA bundle that signs the server's certificate."""
    secret_ref: Name | None = None
    """A Secret with `accessKeyId` / `secretKey` keys for basic authentication."""


class RegistrySource(ApiModel):
    """Import a container disk from an OCI registry."""

    url: str = Field(max_length=2048, pattern=r"^(docker|oci-archive)://[^\s]+$")
    """The container disk, e.g. `docker://quay.io/containerdisks/fedora:40`."""
    secret_ref: Name | None = None
    """A Secret with registry credentials (`accessKeyId` / `secretKey`)."""
    cert_config_map: Name | None = None
    """A ConfigMap holding the registry's CA bundle."""


class S3Source(ApiModel):
    """Import from an S3-compatible object store."""

    url: str = Field(max_length=2048, pattern=r"^(https?|s3)://[^\s]+$")
    """The object's URL, e.g. `https://s3.example.org/images/disk.qcow2`."""
    secret_ref: Name
    """A Secret with `accessKeyId` / `secretKey` keys for the object store."""
    cert_config_map: Name | None = None
    """A ConfigMap holding the object store's CA bundle."""


class UploadSource(ApiModel):
    """Wait for the image to be uploaded; status tells how (CDI's upload proxy)."""


class ImageSource(ApiModel):
    """Where the image's bits come from: exactly one of the sources."""

    rules = (
        Rule(
            cel=exactly_one("http", "registry", "s3", "upload", "volume"),
            message="source needs exactly one of http, registry, s3, upload or volume",
            check=lambda s: count_set(s, "http", "registry", "s3", "upload", "volume") == 1,
        ),
    )

    http: HttpSource | None = None
    """Import from an HTTP(S) URL."""
    registry: RegistrySource | None = None
    """Import a container disk from an OCI registry."""
    s3: S3Source | None = None
    """Import from an S3-compatible object store."""
    upload: UploadSource | None = None
    """Upload the image through CDI's upload proxy (`virtctl image-upload`)."""
    volume: LocalRef | None = None
    """Create the image from a Volume in this Project (Glance's upload-to-image)."""


def _properties_valid(spec: ImageSpec) -> bool:
    return all(
        spec.properties.get(key, allowed[0]) in allowed for key, allowed in PROPERTY_VALUES.items()
    )


def _property_rule_cel() -> str:
    each = " && ".join(
        f"(!('{key}' in self.properties) || self.properties['{key}'] in {list(allowed)})"
        for key, allowed in PROPERTY_VALUES.items()
    )
    return f"!has(self.properties) || ({each})"


def _property_rule_message() -> str:
    listed = "; ".join(f"{key}: {', '.join(allowed)}" for key, allowed in PROPERTY_VALUES.items())
    return f"properties with a fixed set of values must use one of them ({listed})"


class ImageSpec(ApiModel):
    """A bootable disk image, imported by CDI into a PVC that Instances and Volumes clone."""

    rules = (
        Rule(
            cel=f"!(self.diskFormat in {list(UNBOOTABLE_FORMATS)})",
            message="diskFormat aki, ari and ami are Amazon kernel, ramdisk and machine images"
            " that KubeVirt cannot boot; convert the image to qcow2 or raw",
            check=lambda s: s.disk_format not in UNBOOTABLE_FORMATS,
        ),
        Rule(
            cel="self.containerFormat == 'bare'",
            message="containerFormat ovf and ova are packages CDI cannot unpack; extract the"
            " disk from the package and import it with containerFormat bare",
            check=lambda s: s.container_format == "bare",
        ),
        Rule(
            cel="!has(self.sharedWith) || self.visibility == 'shared'",
            message="sharedWith is only used with visibility: shared",
            check=lambda s: not s.shared_with or s.visibility == "shared",
        ),
        Rule(
            cel="!has(self.checksum) || has(self.source.http)",
            message="checksum is verified by CDI on http imports only; remove it for other sources",
            check=lambda s: s.checksum is None or s.source.http is not None,
        ),
        Rule(
            cel=_property_rule_cel(),
            message=_property_rule_message(),
            check=_properties_valid,
        ),
    )

    source: ImageSource
    """Where the image comes from."""
    disk_format: DiskFormat
    """The format of the disk image: qcow2, raw, iso, vmdk, vdi, vhd or vhdx (CDI converts
    them all to raw). aki, ari and ami are refused: KubeVirt cannot boot them."""
    container_format: Literal["bare", "ovf", "ova"] = "bare"
    """The container of the disk image. Only `bare` (no container) can be imported."""
    min_disk: Quantity | None = None
    """The smallest root disk an Instance booting this image may have (e.g. `1Gi`)."""
    min_ram: Quantity | None = None
    """The least memory an Instance booting this image may have (e.g. `512Mi`)."""
    visibility: Literal["private", "shared", "community", "public"] = "private"
    """Who may boot the image: `private` this Project only, `shared` also the Projects
    in `sharedWith`, `community` and `public` every Project."""
    shared_with: list[Name] | None = Field(
        default=None,
        max_length=256,
        json_schema_extra=LIST_SET,
    )
    """Projects allowed to use a `shared` image."""
    properties: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
    )
    """Glance image properties. `hw_firmware_type` (bios, uefi), `hw_disk_bus` (virtio,
    sata, scsi), `hw_cdrom_bus`, `hw_vif_model` and `os_type` become the KubeVirt
    preference Instances of this image inherit; others (`os_distro`, ...) are recorded."""
    checksum: str | None = Field(
        default=None, max_length=140, pattern=r"^(md5|sha1|sha256|sha512):[0-9a-f]+$"
    )
    """The expected checksum, `algorithm:hex` (md5, sha1, sha256, sha512); CDI verifies
    it while importing from http."""


class ImageStatus(Status):
    """Observed state of an Image."""

    phase: Literal["queued", "importing", "active", "killed"] | None = None
    """queued (waiting for data), importing, active (bootable), killed (import failed)."""
    progress: str | None = None
    """Import progress as CDI reports it, e.g. `45.20%`."""
    size: Quantity | None = None
    """Size of the stored image (the PVC's capacity)."""
    virtual_size: Quantity | None = None
    """The disk size the image presents to a guest."""
    checksum: str | None = None
    """The checksum of the imported data, when known."""
    data_volume: str | None = None
    """The CDI DataVolume importing the image."""
    pvc: str | None = None
    """The PVC holding the image."""
    data_source: str | None = None
    """The CDI DataSource other Projects clone the image through."""
    preference: str | None = None
    """The VirtualMachinePreference built from `properties`."""
    upload_command: str | None = None
    """For `upload` images: the command that uploads the file."""


IMAGE = Kind(
    group=GROUP,
    kind="Image",
    doc="A Glance image: a bootable disk image imported by CDI into a PVC in the Project's"
    " namespace, and shared with other Projects according to its visibility.",
    plural="images",
    short_names=("img",),
    spec=ImageSpec,
    status=ImageStatus,
    columns=(
        PHASE,
        READY,
        Column("Format", ".spec.diskFormat", description="Disk format"),
        Column("Visibility", ".spec.visibility", description="Who may boot it"),
        Column("Progress", ".status.progress", description="Import progress"),
        Column("Size", ".status.size", description="Stored size", priority=1),
        AGE,
    ),
)

KINDS = (IMAGE,)
