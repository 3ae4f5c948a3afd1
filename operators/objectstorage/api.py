"""Swift's API: the Bucket, a container on an S3-compatible object store."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from operators.common.kinds import AGE, PHASE, READY, Column, Kind
from operators.common.schema import LIST_SET, ApiModel, Name, Quantity, Rule
from operators.common.status import Status

GROUP = "objectstorage.ostack.dev"

# Swift's ACL elements: `project:user`, `project:*` (everyone in a project), `*:user`;
# readers may also be `.r:*` (anyone) and `.rlistings` (anyone may list).
_GRANTEE = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?|\*):([-a-zA-Z0-9_.@]+|\*)"
ACL_WRITE_PATTERN = f"^{_GRANTEE}$"
ACL_READ_PATTERN = rf"^(\.r:\*|\.rlistings|{_GRANTEE})$"


AclEntry = Annotated[str, Field(max_length=256)]


def _all_match(pattern: str, entries: list[str]) -> bool:
    return all(re.fullmatch(pattern, e) for e in entries)


class Acl(ApiModel):
    """Who may read and write the Bucket's objects, in Swift's ACL syntax."""

    rules = (
        Rule(
            cel=f"!has(self.read) || self.read.all(x, x.matches(r'{ACL_READ_PATTERN}'))",
            message="read ACL entries are .r:* (public read), .rlistings (public listing),"
            " project:user, project:* or *:user",
            check=lambda a: _all_match(ACL_READ_PATTERN, a.read),
        ),
        Rule(
            cel=f"!has(self.write) || self.write.all(x, x.matches(r'{ACL_WRITE_PATTERN}'))",
            message="write ACL entries are project:user, project:* or *:user; Swift has no"
            " public write",
            check=lambda a: _all_match(ACL_WRITE_PATTERN, a.write),
        ),
    )

    read: list[AclEntry] = Field(default_factory=list, max_length=64, json_schema_extra=LIST_SET)
    """Readers: `.r:*` (public read), `.rlistings` (public listing), `project:user`,
    `project:*` (every member of a Project), `*:user`."""
    write: list[AclEntry] = Field(default_factory=list, max_length=64, json_schema_extra=LIST_SET)
    """Writers: `project:user`, `project:*` or `*:user`."""


class BucketQuota(ApiModel):
    """Limits the object store enforces on the Bucket."""

    bytes: Quantity | None = None
    """Total size of the objects, e.g. `1Gi`."""
    objects: int | None = Field(default=None, ge=0)
    """Number of objects."""


class BucketSpec(ApiModel):
    """A Swift container: a bucket on the cloud's object store, with ACLs, a storage
    policy, quota and versioning."""

    rules = (
        Rule(
            cel="has(self.storagePolicy) == has(oldSelf.storagePolicy)"
            " && (!has(self.storagePolicy) || self.storagePolicy == oldSelf.storagePolicy)",
            message="storagePolicy cannot change once the Bucket exists; create a new Bucket"
            " and copy the objects",
            transition=lambda old, new: old.storage_policy == new.storage_policy,
        ),
    )

    storage_policy: Name | None = None
    """A storage policy the cloud operator offers (e.g. `gold`, `silver`, `cold`); the
    default policy when unset. Fixed once the Bucket exists."""
    acl: Acl = Field(default_factory=Acl)
    """Read and write grants beyond the Project's admins."""
    quota: BucketQuota | None = None
    """Size and object-count limits."""
    versioning: bool = False
    """Keep every version of overwritten and deleted objects."""
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    """`Retain` (default): deleting the Bucket object keeps the bucket and its data on
    the object store. `Delete`: the bucket is emptied and deleted."""


class Usage(ApiModel):
    """What the Bucket holds."""

    bytes: Quantity | None = None
    """Total size of the objects."""
    objects: int | None = None
    """Number of objects."""


class BucketStatus(Status):
    """Observed state of a Bucket."""

    phase: Literal["Pending", "Ready", "Error", "Deleting"] | None = None
    """Pending, Ready, Error or Deleting."""
    endpoint: str | None = None
    """The object store's S3 endpoint URL."""
    bucket_name: str | None = None
    """The bucket's name on the object store."""
    credentials_secret: str | None = None
    """The Secret with the Project's access key for the object store."""
    storage_class: str | None = None
    """The S3 storage class the storage policy writes objects with, if it names one."""
    usage: Usage | None = None
    """What the Bucket holds, refreshed periodically."""


BUCKET = Kind(
    group=GROUP,
    kind="Bucket",
    doc="A Swift container: a bucket on the cloud's S3-compatible object store, with Swift"
    " ACLs, a storage policy, quota, versioning and a credentials Secret.",
    plural="buckets",
    short_names=("bkt",),
    spec=BucketSpec,
    status=BucketStatus,
    columns=(
        PHASE,
        READY,
        Column("Bucket", ".status.bucketName", description="Name on the object store"),
        Column("Policy", ".spec.storagePolicy", description="Storage policy"),
        Column("Bytes", ".status.usage.bytes", description="Stored bytes", priority=1),
        AGE,
    ),
)

KINDS = (BUCKET,)
