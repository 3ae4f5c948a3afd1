"""Swift as a kopf controller: Buckets become buckets on the cloud's S3 object store, owned
by their Project's account there, with Swift's ACLs as bucket policies, storage
policies, versioning, quota and a deletion policy."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import secrets
from typing import Any

import kopf
from botocore.exceptions import ClientError
from kubernetes.client.exceptions import ApiException

from operators.common import children, handlers, kube, metrics, tenancy
from operators.common.kinds import VERSION
from operators.common.reporting import report
from operators.common.schema import bytes_quantity, quantity_value
from operators.common.status import Reason
from operators.objectstorage import acl, config
from operators.objectstorage.api import BUCKET, BucketSpec
from operators.objectstorage.backend import Key, NameTaken, ObjectStore, Unreachable

log = logging.getLogger(__name__)
BUCKETS = (BUCKET.group, VERSION, BUCKET.plural)
CREDENTIALS = "object-store-credentials"
SYNCED = "objectstorage.ostack.dev/synced"
"""On a Project's credentials Secret: a digest of the key the store's account has."""
BYTES_METER = metrics.Usage(
    "ostack_bucket_bytes", "Bytes stored in a Bucket.", ("project", "bucket")
)
OBJECTS_METER = metrics.Usage(
    "ostack_bucket_objects", "Objects stored in a Bucket.", ("project", "bucket")
)
USAGE_INTERVAL = float(os.environ.get("OSTACK_USAGE_INTERVAL", "60"))


class NotConfigured(Exception):
    """The cloud operator has not configured an object store."""


@functools.lru_cache(maxsize=4)
def _store(text: str, access: str, secret: str) -> ObjectStore:
    return ObjectStore(config.parse(text), Key(access, secret))


def store() -> ObjectStore:
    found = kube.read("v1", "ConfigMap", config.CONFIG_MAP, config.NAMESPACE)
    text = ((found or {}).get("data") or {}).get("config.yaml")
    if not text:
        raise NotConfigured(
            f"no object store is configured: the cloud operator sets ConfigMap"
            f" {config.NAMESPACE}/{config.CONFIG_MAP}"
        )
    parsed = config.parse(text)
    admin = kube.read("v1", "Secret", parsed.admin_credentials_secret, config.NAMESPACE)
    data = (admin or {}).get("data") or {}
    if "accessKey" not in data or "secretKey" not in data:
        raise NotConfigured(
            f"Secret {config.NAMESPACE}/{parsed.admin_credentials_secret} with accessKey and"
            " secretKey is missing"
        )
    return _store(text, _decode(data["accessKey"]), _decode(data["secretKey"]))


def _decode(value: str) -> str:
    return base64.b64decode(value).decode()


def _digest(key: Key) -> str:
    return hashlib.sha256(f"{key.access}\0{key.secret}".encode()).hexdigest()[:16]


def credentials(objects: ObjectStore, project: str, namespace: str) -> Key:
    """The Project's key on the store, from the Secret in its namespace (made the first
    time, then the truth: the store's account is brought in line with it)."""
    secret = kube.read("v1", "Secret", CREDENTIALS, namespace)
    if secret is None:
        fresh = {
            "AWS_ACCESS_KEY_ID": acl.access_key(project),
            "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
            "AWS_ENDPOINT_URL": objects.config.endpoint,
            "AWS_REGION": objects.config.region,
        }
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": CREDENTIALS,
                "namespace": namespace,
                "labels": {children.MANAGED_BY: children.MANAGER, children.PROJECT: project},
            },
            "type": "Opaque",
            "stringData": fresh,
        }
        try:
            kube.send(body, "POST", [])
        except ApiException as error:
            if error.status != 409:
                raise
        secret = kube.read("v1", "Secret", CREDENTIALS, namespace)
    assert secret is not None
    data = secret.get("data") or {}
    key = Key(_decode(data["AWS_ACCESS_KEY_ID"]), _decode(data["AWS_SECRET_ACCESS_KEY"]))
    if (secret["metadata"].get("annotations") or {}).get(SYNCED) != _digest(key):
        objects.admin.ensure_account(key)
        kube.resource("v1", "Secret").patch(
            name=CREDENTIALS,
            namespace=namespace,
            body={"metadata": {"annotations": {SYNCED: _digest(key)}}},
            content_type="application/merge-patch+json",
        )
        log.info("object store account of Project %s is in line with its Secret", project)
    return key


# --- reconciling a Bucket --------------------------------------------------------------------


@handlers.reconciler(BUCKET)
def reconcile_bucket(body: kopf.Body, **indexes: Any) -> None:
    reconcile(kube.plain(body), indexes)


@kopf.timer(*BUCKETS, interval=USAGE_INTERVAL, initial_delay=USAGE_INTERVAL)
def refresh_bucket(body: kopf.Body, **indexes: Any) -> None:
    """Usage (and with it quota) is refreshed periodically; so is everything else, which
    also picks up an object store that came back or a changed configuration."""
    if not body["metadata"].get("deletionTimestamp"):
        reconcile(kube.plain(body), indexes)


def reconcile(bucket: dict[str, Any], indexes: dict[str, Any]) -> None:
    namespace, name = bucket["metadata"]["namespace"], bucket["metadata"]["name"]
    project = tenancy.project_of(namespace, indexes) or namespace
    bucket_name = acl.bucket_name(project, name)
    try:
        spec: BucketSpec = BUCKET.parse_spec(bucket)
        granted = acl.grants(spec.acl)
        grantees = _grantee_namespaces(granted, project, indexes)
        objects = store()
        policy = objects.config.policy(spec.storage_policy)
    except ValueError as problem:
        report(bucket, {"phase": "Error"}, (False, Reason.INVALID_CONFIGURATION, str(problem)))
        return
    except NotConfigured as problem:
        report(bucket, {"phase": "Pending"}, (False, Reason.TRANSIENT_ERROR, str(problem)))
        return
    fields: dict[str, Any] = {
        "endpoint": objects.config.endpoint,
        "bucketName": bucket_name,
        "credentialsSecret": CREDENTIALS,
        "storageClass": policy.storage_class if policy else None,
    }
    try:
        owner = credentials(objects, project, namespace)
        for grantee, grantee_ns in grantees.items():
            credentials(objects, grantee, grantee_ns)
        marker = f"{namespace}/{name}"
        placement = policy.placement if policy else None
        if objects.ensure_bucket(
            bucket_name, owner.access, marker, placement, policy.name if policy else None
        ):
            kopf.event(bucket, type="Normal", reason="Created", message=f"bucket {bucket_name}")
        objects.sync_versioning(bucket_name, spec.versioning)
        used = objects.usage(bucket_name)
        full = acl.over_quota(_quota_bytes(spec), spec.quota.objects if spec.quota else None, used)
        objects.sync_policy(bucket_name, acl.bucket_policy(bucket_name, project, granted, full))
    except NameTaken as problem:
        report(
            bucket,
            {"phase": "Error", **fields},
            (False, Reason.INVALID_CONFIGURATION, str(problem)),
        )
        return
    except Unreachable as problem:
        report(
            bucket, {"phase": "Pending", **fields}, (False, Reason.TRANSIENT_ERROR, str(problem))
        )
        raise kopf.TemporaryError(str(problem), delay=15) from None
    except (ClientError, RuntimeError) as problem:
        message = f"the object store refused: {problem}"
        report(bucket, {"phase": "Error", **fields}, (False, Reason.UNRECOVERABLE_ERROR, message))
        return
    fields["usage"] = {"bytes": bytes_quantity(used[0]), "objects": used[1]}
    BYTES_METER.observe(namespace, name, (project, name), used[0])
    OBJECTS_METER.observe(namespace, name, (project, name), used[1])
    message = f"bucket {bucket_name} on {objects.config.endpoint}"
    if full:
        message += (
            ": quota reached, writes are refused until objects are deleted or the quota raised"
        )
    report(bucket, {"phase": "Ready", **fields}, (True, Reason.SUCCEEDED, message))


def _quota_bytes(spec: BucketSpec) -> int | None:
    if spec.quota is None or spec.quota.bytes is None:
        return None
    return int(quantity_value(spec.quota.bytes))


def _grantee_namespaces(granted: acl.Grants, project: str, indexes) -> dict[str, str]:
    """Every other Project the ACL names, with its namespace; ValueError for unknown ones."""
    found = {}
    for grantee in sorted({*granted.readers, *granted.writers} - {project}):
        namespace = tenancy.first(indexes["namespace_by_project"], grantee)
        if namespace is None:
            raise ValueError(f"Project {grantee} named in the ACL does not exist")
        found[grantee] = namespace
    return found


@kopf.on.event(*BUCKETS)
def bucket_gone(type: str, namespace: str, name: str, **_: Any) -> None:
    if type == "DELETED":
        BYTES_METER.forget(namespace, name)
        OBJECTS_METER.forget(namespace, name)


# --- deletion --------------------------------------------------------------------------------


@kopf.on.delete(*BUCKETS, backoff=15)
def delete_bucket(body: kopf.Body, namespace: str, name: str, **indexes: Any) -> None:
    """Retain keeps the bucket and its data; Delete empties and deletes it. Until the store
    answers, the Bucket waits (its finalizer holds it) and says why: data is never
    dropped silently."""
    bucket = kube.plain(body)
    if BUCKET.parse_spec(bucket).deletion_policy == "Retain":
        return
    project = tenancy.project_of(namespace, indexes) or namespace
    bucket_name = (bucket.get("status") or {}).get("bucketName") or acl.bucket_name(project, name)
    try:
        objects = store()
        # Only a bucket marked as this Bucket's: never someone else's of the same name.
        if objects.marker(bucket_name) == f"{namespace}/{name}":
            objects.delete_bucket(bucket_name)
    except (Unreachable, NotConfigured) as problem:
        message = f"waiting to delete bucket {bucket_name}: {problem}"
        report(bucket, {"phase": "Deleting"}, (False, Reason.TRANSIENT_ERROR, message))
        raise kopf.TemporaryError(message, delay=15) from None
    kopf.event(
        bucket, type="Normal", reason="Deleted", message=f"bucket {bucket_name} and its data"
    )
