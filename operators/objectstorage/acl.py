"""Swift's container ACLs as S3 bucket policies, as pure functions.

The object store enforces the result itself: a Project without a grant is refused by the
store, not only by ostack. Each Project has one access key on the store (see
backend.py), so grants name Projects; Swift's per-user entries (`project:user`,
`*:user`) need per-user keys, which ostack does not issue, and are refused with a message.

| Swift ACL | S3 policy |
| --- | --- |
| (the owning Project) | its key may do everything (`s3:*`), stated (see below) |
| read `project:*` | that Project's key may GetObject(+Version), ListBucket(+Versions) |
| write `project:*` | that Project's key may PutObject, DeleteObject(+Version) |
| read `.r:*` | anyone may GetObject |
| read `.rlistings` | anyone may ListBucket |
| quota reached | everyone is denied PutObject (an explicit Deny beats every Allow) |

The owner's statement is explicit because some stores (versitygw) decide by the bucket
policy alone once a bucket has one, which would shut the owner out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from operators.objectstorage.api import Acl

READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:ListBucketVersions")
WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")
UID_TAG = "ostack-bucket"
POLICY_TAG = "ostack-storage-policy"


def access_key(project: str) -> str:
    """A Project's access key id on the object store (also its policy principal)."""
    return f"ostack-{project}"


def bucket_name(project: str, name: str) -> str:
    """The bucket's name on the store: unique per (Project, Bucket), a valid S3 name.
    Too long for 63 characters, it is shortened and made unique with a hash."""
    full = f"{project}-{name}"
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{project[:27]}-{name[:26]}-{digest}".replace("--", "-")


@dataclass(frozen=True)
class Grants:
    readers: tuple[str, ...] = ()
    """Projects that may read."""
    writers: tuple[str, ...] = ()
    public_read: bool = False
    public_listing: bool = False


def grants(acl: Acl) -> Grants:
    """The Projects and public access an ACL grants; ValueError for entries the store
    cannot enforce."""

    def projects(entries: list[str]) -> tuple[str, ...]:
        found = []
        for entry in entries:
            if entry in (".r:*", ".rlistings"):
                continue
            project, _, user = entry.partition(":")
            if user != "*" or project == "*":
                raise ValueError(
                    f"ACL entry {entry} names a user; the object store knows Projects (one"
                    f" access key each), so grant a whole Project, e.g. {project}:*"
                    if project != "*"
                    else f"ACL entry {entry} names a user of any Project; grant Projects"
                    " (project:*) instead"
                )
            found.append(project)
        return tuple(sorted(set(found)))

    return Grants(
        readers=projects(acl.read),
        writers=projects(acl.write),
        public_read=".r:*" in acl.read,
        public_listing=".rlistings" in acl.read,
    )


def _statement(effect: str, principal: Any, actions: tuple[str, ...], bucket: str) -> dict:
    return {
        "Effect": effect,
        "Principal": principal,
        "Action": list(actions),
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    }


def bucket_policy(bucket: str, owner: str, granted: Grants, over_quota: bool) -> str:
    """The policy document, as JSON text stable for comparison."""
    statements = [_statement("Allow", {"AWS": [access_key(owner)]}, ("s3:*",), bucket)]
    if granted.readers:
        principals = {"AWS": [access_key(p) for p in granted.readers]}
        statements.append(_statement("Allow", principals, READ_ACTIONS, bucket))
    if granted.writers:
        principals = {"AWS": [access_key(p) for p in granted.writers]}
        statements.append(_statement("Allow", principals, WRITE_ACTIONS, bucket))
    if granted.public_read:
        statements.append(_statement("Allow", "*", ("s3:GetObject",), bucket))
    if granted.public_listing:
        statements.append(_statement("Allow", "*", ("s3:ListBucket",), bucket))
    if over_quota:
        statements.append(_statement("Deny", "*", ("s3:PutObject",), bucket))
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def over_quota(quota_bytes: int | None, quota_objects: int | None, used: tuple[int, int]) -> bool:
    stored, objects = used
    return (quota_bytes is not None and stored >= quota_bytes) or (
        quota_objects is not None and objects >= quota_objects
    )
