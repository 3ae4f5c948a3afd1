"""Nova's API: the Instance, a server that runs as a KubeVirt VirtualMachine."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field

from operators.common.kinds import AGE, PHASE, READY, Column, Kind
from operators.common.refs import LocalRef, ProjectRef, SecretKeyRef
from operators.common.schema import (
    LIST_SET,
    ApiModel,
    Name,
    PublicKey,
    Quantity,
    Rule,
    Timestamp,
    count_set,
    exactly_one,
    list_map,
)
from operators.common.status import Status

GROUP = "compute.ostack.dev"

PowerState = Literal["Running", "Stopped", "Paused"]
MetadataValue = Annotated[str, Field(max_length=255)]
FlavorName = Annotated[str, Field(min_length=1, max_length=253)]
"""The name of a VirtualMachineClusterInstancetype."""


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Resources(ApiModel):
    """An inline flavor: the Instance's vCPUs and memory."""

    cpu: int = Field(ge=1, le=512)
    """Number of vCPUs."""
    memory: Quantity
    """Memory, e.g. `2Gi`."""


class NetworkAttachment(ApiModel):
    """A Network the Instance has an interface on."""

    rules = (
        Rule(
            cel="!has(self.fixedIP) || isIP(self.fixedIP)",
            message="fixedIP must be an IPv4 or IPv6 address",
            check=lambda n: n.fixed_ip is None or is_ip(n.fixed_ip),
        ),
    )

    name: Name
    """The Network's name."""
    project: str | None = Field(default=None, max_length=63)
    """The Project of a `shared` Network of another Project; defaults to this one."""
    fixed_ip: str | None = Field(default=None, alias="fixedIP", max_length=45)
    """An address to take from the Network's subnets; allocated from the pools when
    unset."""


class VolumeAttachment(ApiModel):
    """A Volume attached to the Instance."""

    name: Name
    """The Volume's name."""


class ServerGroup(ApiModel):
    """Nova's server group: Instances with the same group name are placed by its policy."""

    name: Name
    """The group's name; Instances naming the same group are its members."""
    policy: Literal["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]
    """`affinity`: all members on one host; `anti-affinity`: each on a different host;
    the `soft-` variants prefer this but still start when it cannot be met."""


class InstanceSpec(ApiModel):
    """A server: a KubeVirt VirtualMachine with its root disk, networks, volumes and
    cloud-init, in the Project's namespace."""

    rules = (
        Rule(
            cel=exactly_one("flavor", "resources"),
            message="give either flavor (a VirtualMachineClusterInstancetype, e.g. m1.small)"
            " or inline resources, not both and not neither",
            check=lambda s: count_set(s, "flavor", "resources") == 1,
        ),
        Rule(
            cel=exactly_one("image", "bootVolume"),
            message="boot from either image or bootVolume, not both and not neither",
            check=lambda s: count_set(s, "image", "boot_volume") == 1,
        ),
        Rule(
            cel="!has(self.userData) || !has(self.userDataSecret)",
            message="give userData inline or from userDataSecret, not both",
            check=lambda s: s.user_data is None or s.user_data_secret is None,
        ),
        Rule(
            cel="!has(self.rootDiskSize) || has(self.image)",
            message="rootDiskSize applies to image boots; a bootVolume has its own size",
            check=lambda s: s.root_disk_size is None or s.image is not None,
        ),
        Rule(
            cel="!has(self.rebuildRequestedAt) || has(self.image)",
            message="rebuild re-creates the root disk from an image; it needs spec.image",
            check=lambda s: s.rebuild_requested_at is None or s.image is not None,
        ),
    )

    flavor: FlavorName | None = None
    """The flavor: the name of a cluster-wide KubeVirt VirtualMachineClusterInstancetype
    (m1.tiny, m1.small, m1.medium, m1.large, m1.xlarge ship with ostack). Changing it
    resizes the Instance."""
    resources: Resources | None = None
    """Inline vCPUs and memory instead of a flavor."""
    image: ProjectRef | None = None
    """The Image to boot from; its root disk is a copy owned by the Instance. An Image
    of another Project must be public, community or shared with this Project."""
    boot_volume: LocalRef | None = None
    """A Volume to boot from instead of an Image."""
    root_disk_size: Quantity | None = None
    """Root disk size for image boots; the disk is the largest of this, the flavor's disk
    and the image's minDisk."""
    volumes: list[VolumeAttachment] = Field(
        default_factory=list, max_length=64, json_schema_extra=list_map("name")
    )
    """Volumes attached to the Instance; hot-plugged while it runs."""
    networks: list[NetworkAttachment] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("name")
    )
    """Networks the Instance has interfaces on, in order; none means the pod network."""
    security_groups: list[Name] = Field(
        default_factory=list, max_length=32, json_schema_extra=LIST_SET
    )
    """SecurityGroups whose rules apply to the Instance; the Project's `default` group
    applies when none is given."""
    key_pairs: list[PublicKey] = Field(default_factory=list, max_length=32)
    """SSH public keys put into the guest by cloud-init."""
    user_data: str | None = Field(default=None, max_length=65536)
    """cloud-init user data (e.g. `#cloud-config ...`). Stored in a Secret, never in the
    VirtualMachine in clear text."""
    user_data_secret: SecretKeyRef | None = None
    """cloud-init user data from a key of a Secret instead of inline."""
    power_state: PowerState = "Running"
    """Running, Stopped or Paused."""
    reboot_requested_at: Timestamp | None = None
    """Set to the current time to reboot: a value newer than the last reboot restarts the
    guest."""
    rebuild_requested_at: Timestamp | None = None
    """Set to the current time to rebuild: the root disk is re-created from `image` while
    the Instance keeps its name, addresses and Volumes."""
    shelved: bool = False
    """Shelve: stop the Instance and free its compute while its disks stay (status
    SHELVED_OFFLOADED). Unset to unshelve."""
    availability_zone: str | None = Field(default=None, max_length=63)
    """Run on nodes of this zone (the `topology.kubernetes.io/zone` label)."""
    server_group: ServerGroup | None = None
    """Place the Instance relative to the other members of a server group."""
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, max_length=128)
    """Nova server metadata: free key/value pairs (values up to 255 characters), kept as
    annotations of the VirtualMachine."""


class Address(ApiModel):
    """An address of the Instance on one network."""

    network: str
    """The Network's name (`pod` for the pod network)."""
    ip: str | None = None
    """The IP address."""
    mac: str | None = None
    """The interface's MAC address."""
    interface: str | None = None
    """The interface name in the VirtualMachine."""
    floating: bool | None = None
    """A floating address: the LoadBalancer Service that publishes the Instance on an
    external Network."""


class FlavorStatus(ApiModel):
    """The size the Instance runs with."""

    name: str | None = None
    """The flavor name (absent for inline resources)."""
    cpu: int | None = None
    """vCPUs."""
    memory: Quantity | None = None
    """Memory."""


class InstanceStatus(Status):
    """Observed state of an Instance, mirrored from its VirtualMachine and
    VirtualMachineInstance."""

    phase: (
        Literal[
            "BUILD",
            "ACTIVE",
            "SHUTOFF",
            "PAUSED",
            "REBOOT",
            "RESIZE",
            "REBUILD",
            "SHELVED_OFFLOADED",
            "ERROR",
            "DELETED",
        ]
        | None
    ) = None
    """Nova's server status: BUILD, ACTIVE, SHUTOFF, PAUSED, REBOOT, RESIZE, REBUILD,
    SHELVED_OFFLOADED, ERROR, DELETED."""
    power_state: Literal["Running", "Shutdown", "Paused", "NoState", "Crashed"] | None = None
    """The guest's power state: Running, Shutdown, Paused, NoState or Crashed."""
    addresses: list[Address] | None = Field(default=None, max_length=16)
    """Addresses per network."""
    host: str | None = None
    """The node the Instance runs on."""
    vm_name: str | None = None
    """The KubeVirt VirtualMachine."""
    launched_at: Timestamp | None = None
    """When the Instance last started running."""
    flavor: FlavorStatus | None = None
    """The size it runs with."""
    last_reboot_at: Timestamp | None = None
    """The `rebootRequestedAt` last acted on."""
    last_rebuild_at: Timestamp | None = None
    """The `rebuildRequestedAt` last acted on (its old root disk is gone)."""


INSTANCE = Kind(
    group=GROUP,
    kind="Instance",
    doc="A Nova server: a KubeVirt VirtualMachine booted from an Image or a Volume, with"
    " its networks, volumes, cloud-init and power state.",
    plural="instances",
    short_names=("inst", "server"),
    spec=InstanceSpec,
    status=InstanceStatus,
    columns=(
        PHASE,
        READY,
        Column("Flavor", ".spec.flavor", description="The flavor"),
        Column("Address", ".status.addresses[0].ip", description="First address"),
        Column("Host", ".status.host", description="Node it runs on", priority=1),
        Column("Image", ".spec.image.name", description="Image it boots", priority=1),
        AGE,
    ),
)

KINDS = (INSTANCE,)
