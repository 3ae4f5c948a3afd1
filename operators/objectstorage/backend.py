"""The object store behind Buckets: S3 for buckets and objects (boto3), and the store's
admin API for what S3 has no call for (per-Project accounts, creating a bucket on a
Project's behalf). versitygw's admin API is the one implemented; another store (Ceph
RGW's admin ops, MinIO's) is another `Admin`.

Calls block; the controller makes them from sync handlers (kopf's thread pool). Every
failure to reach the store is `Unreachable`, so handlers can say so and retry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Protocol
from xml.sax.saxutils import escape

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError
from botocore.httpsession import URLLib3Session

from operators.objectstorage.config import StoreConfig

log = logging.getLogger(__name__)
TIMEOUTS = Config(
    signature_version="s3v4",
    s3={"addressing_style": "path"},
    connect_timeout=3,
    read_timeout=15,
    retries={"max_attempts": 2, "mode": "standard"},
)


class Unreachable(Exception):
    """The object store did not answer (or answered with a server error)."""


class NameTaken(Exception):
    """The bucket name belongs to something ostack did not create for this Bucket."""


@dataclass(frozen=True)
class Key:
    access: str
    secret: str


class Admin(Protocol):
    def ensure_account(self, key: Key) -> None: ...

    def create_bucket(
        self, bucket: str, owner: str, tags: dict[str, str], placement: str | None
    ) -> str:
        """Returns "created", "exists-owned" (the owner already has it) or "exists"."""


class VersityAdmin:
    """versitygw's admin API: SigV4-signed PATCH requests with XML bodies."""

    def __init__(self, endpoint: str, region: str, admin: Key) -> None:
        self.endpoint, self.region, self.admin = endpoint, region, admin
        self.http = URLLib3Session(timeout=10)

    def _call(self, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
        request = AWSRequest(
            method="PATCH",
            url=f"{self.endpoint}{path}",
            data=body,
            headers={"X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest(), **(headers or {})},
        )
        SigV4Auth(Credentials(self.admin.access, self.admin.secret), "s3", self.region).add_auth(
            request
        )
        try:
            response = self.http.send(request.prepare())
        except BotoCoreError as error:
            raise Unreachable(f"object store admin API at {self.endpoint}: {error}") from None
        if response.status_code >= 500:
            raise Unreachable(f"object store admin API answered {response.status_code}")
        return response.status_code, response.content.decode(errors="replace")

    def ensure_account(self, key: Key) -> None:
        account = (
            f"<Account><Access>{escape(key.access)}</Access><Secret>{escape(key.secret)}</Secret>"
            "<Role>user</Role><UserID>0</UserID><GroupID>0</GroupID><ProjectID>0</ProjectID>"
            "</Account>"
        ).encode()
        status, text = self._call("/create-user", account)
        if status == 409 and "XAdminUserExists" in text:
            # The Secret is the truth: a regenerated one replaces the account's secret.
            props = f"<MutableProps><Secret>{escape(key.secret)}</Secret></MutableProps>"
            status, text = self._call(f"/update-user?access={key.access}", props.encode())
        if status >= 300:
            raise RuntimeError(f"the object store refused the account: {_code(text)}")

    def create_bucket(
        self, bucket: str, owner: str, tags: dict[str, str], placement: str | None
    ) -> str:
        tag_xml = "".join(
            f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags.items()
        )
        where = f"<LocationConstraint>{escape(placement)}</LocationConstraint>" if placement else ""
        body = (
            '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"{where}<Tags>{tag_xml}</Tags></CreateBucketConfiguration>"
        ).encode()
        status, text = self._call(f"/{bucket}/create", body, {"x-vgw-owner": owner})
        if status < 300:
            return "created"
        code = _code(text)
        if code == "BucketAlreadyOwnedByYou":
            return "exists-owned"
        if code == "BucketAlreadyExists":
            return "exists"
        raise RuntimeError(f"the object store refused to create bucket {bucket}: {code}")


def _code(text: str) -> str:
    start, end = text.find("<Code>"), text.find("</Code>")
    return text[start + 6 : end] if start >= 0 and end > start else text[:200]


class ObjectStore:
    """One object store, driven with its admin credentials."""

    def __init__(self, config: StoreConfig, admin: Key) -> None:
        self.config = config
        self.admin = VersityAdmin(config.endpoint, config.region, admin)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=config.endpoint,
            region_name=config.region,
            aws_access_key_id=admin.access,
            aws_secret_access_key=admin.secret,
            config=TIMEOUTS,
        )

    def _s3(self, operation: str, **kwargs):
        try:
            return getattr(self.s3, operation)(**kwargs)
        except BotoCoreError as error:
            raise Unreachable(f"object store at {self.config.endpoint}: {error}") from None
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise Unreachable(f"object store at {self.config.endpoint}: {error}") from None
            raise

    def ensure_bucket(
        self, bucket: str, owner: str, marker: str, placement: str | None, policy: str | None
    ) -> bool:
        """Create the bucket for `owner`, marked as this Bucket's; True if it was created.
        A bucket of the name that is not marked as this one's is never adopted."""
        tags = {"ostack-bucket": marker, **({"ostack-storage-policy": policy} if policy else {})}
        outcome = self.admin.create_bucket(bucket, owner, tags, placement)
        if outcome == "created":
            return True
        if outcome == "exists-owned" and self.marker(bucket) == marker:
            return False
        raise NameTaken(
            f"bucket {bucket} already exists on the object store and was not made for this"
            " Bucket; ostack never adopts a bucket it did not create: choose another name"
        )

    def marker(self, bucket: str) -> str | None:
        try:
            tags = self._s3("get_bucket_tagging", Bucket=bucket)["TagSet"]
        except ClientError:
            return None
        return next((t["Value"] for t in tags if t["Key"] == "ostack-bucket"), None)

    def exists(self, bucket: str) -> bool:
        try:
            self._s3("head_bucket", Bucket=bucket)
        except ClientError:
            return False
        return True

    def sync_policy(self, bucket: str, wanted: str) -> bool:
        """Make the bucket policy `wanted`; True if it changed."""
        try:
            current = json.loads(self._s3("get_bucket_policy", Bucket=bucket)["Policy"])
        except ClientError:
            current = None
        if current == json.loads(wanted):
            return False
        self._s3("put_bucket_policy", Bucket=bucket, Policy=wanted)
        return True

    def sync_versioning(self, bucket: str, enabled: bool) -> bool:
        """S3 cannot make a bucket unversioned again: off means Suspended."""
        status = self._s3("get_bucket_versioning", Bucket=bucket).get("Status")
        wanted = "Enabled" if enabled else "Suspended"
        if status == wanted or (status is None and not enabled):
            return False
        self._s3("put_bucket_versioning", Bucket=bucket, VersioningConfiguration={"Status": wanted})
        return True

    def usage(self, bucket: str) -> tuple[int, int]:
        """(bytes, objects) of the current objects, as Swift counts a container."""
        stored = objects = 0
        token = None
        while True:
            page = self._s3(
                "list_objects_v2", Bucket=bucket, **({"ContinuationToken": token} if token else {})
            )
            for item in page.get("Contents", []):
                stored += item["Size"]
                objects += 1
            token = page.get("NextContinuationToken")
            if not token:
                return stored, objects

    def delete_bucket(self, bucket: str) -> None:
        """Empty the bucket (every version and delete marker) and delete it."""
        if not self.exists(bucket):
            return
        while True:
            page = self._s3("list_object_versions", Bucket=bucket)
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if not doomed:
                break
            for item in doomed:
                self._s3("delete_object", Bucket=bucket, **item)
        self._s3("delete_bucket", Bucket=bucket)
