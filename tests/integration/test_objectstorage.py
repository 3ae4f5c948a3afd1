"""Swift on a real S3 object store: versitygw on loopback, driven by the real identity and
objectstorage operators. Every grant and refusal here is the store's own answer."""

from __future__ import annotations

import base64
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from kubernetes import client

from operators.common.kinds import VERSION
from operators.devcluster.objectstore import ObjectStoreServer
from operators.objectstorage.api import BUCKET
from operators.objectstorage.tempurl import presign
from tests.support import Operator, eventually
from tests.support import create_object as make
from tests.support import patch_spec as patch
from tests.support import read_object as get

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


@pytest.fixture(scope="module", autouse=True)
def operators(run_operator: Callable[..., Operator], object_store: ObjectStoreServer) -> None:
    # A short usage period, so quota enforcement is seen within the test.
    os.environ["OSTACK_USAGE_INTERVAL"] = "1"
    try:
        for service in ("identity", "objectstorage"):
            run_operator(service)
    finally:
        del os.environ["OSTACK_USAGE_INTERVAL"]


def bucket(api: client.ApiClient, ns: str, name: str) -> Obj:
    return get(api, BUCKET.group, VERSION, BUCKET.plural, ns, name) or {}


def ready_bucket(api: client.ApiClient, ns: str, name: str) -> Obj:
    return eventually(
        lambda: (b := bucket(api, ns, name)).get("status", {}).get("phase") == "Ready" and b,
        f"Bucket {name} Ready",
    )


def failed(api: client.ApiClient, ns: str, name: str, phase: str = "Error") -> str:
    obj = eventually(
        lambda: (b := bucket(api, ns, name)).get("status", {}).get("phase") == phase and b,
        f"Bucket {name} {phase}",
    )
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")["message"]


def s3_as(api: client.ApiClient, store: ObjectStoreServer, ns: str):
    """An S3 client with a Project's own key, read from its credentials Secret."""
    secret = eventually(
        lambda: _secret(api, ns, "object-store-credentials"), f"credentials of {ns}"
    )
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    assert data["AWS_ENDPOINT_URL"] == store.endpoint
    return boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name=data["AWS_REGION"],
        aws_access_key_id=data["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=data["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def admin_s3(store: ObjectStoreServer):
    return boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name="us-east-1",
        aws_access_key_id=store.admin_access,
        aws_secret_access_key=store.admin_secret,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def _secret(api: client.ApiClient, ns: str, name: str):
    try:
        return client.CoreV1Api(api).read_namespaced_secret(name, ns)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def refused(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def delete(api: client.ApiClient, ns: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        BUCKET.group, VERSION, ns, BUCKET.plural, name
    )


def test_a_bucket_belongs_to_its_project_and_re_creating_it_adopts_only_its_own(
    api: client.ApiClient, project, object_store: ObjectStoreServer
) -> None:
    ns = project()
    make(api, BUCKET, ns, "data", {})
    status = ready_bucket(api, ns, "data")["status"]
    assert status["bucketName"] == f"{ns}-data"
    assert status["endpoint"] == object_store.endpoint
    assert status["credentialsSecret"] == "object-store-credentials"
    assert status["storageClass"] == "STANDARD"  # the default policy, silver
    mine = s3_as(api, object_store, ns)
    mine.put_object(Bucket=f"{ns}-data", Key="a", Body=b"kept")

    # Retain (the default): the object goes, the bucket and its data stay; a Bucket of
    # the same name in the same Project finds them again.
    delete(api, ns, "data")
    eventually(lambda: not bucket(api, ns, "data"), "the Bucket gone")
    assert mine.get_object(Bucket=f"{ns}-data", Key="a")["Body"].read() == b"kept"
    make(api, BUCKET, ns, "data", {})
    ready_bucket(api, ns, "data")
    assert mine.get_object(Bucket=f"{ns}-data", Key="a")["Body"].read() == b"kept"

    # A bucket of that name that ostack did not make for this Bucket is never adopted.
    admin_s3(object_store).create_bucket(Bucket=f"{ns}-foreign")
    make(api, BUCKET, ns, "foreign", {})
    assert "ostack never adopts a bucket it did not create" in failed(api, ns, "foreign")


def test_acl_grants_are_enforced_by_the_store(
    api: client.ApiClient, project, object_store: ObjectStoreServer
) -> None:
    owner, reader, stranger = project(), project(), project()
    for ns in (reader, stranger):  # each Project gets its key with its first Bucket
        make(api, BUCKET, ns, "own", {})
        ready_bucket(api, ns, "own")
    make(api, BUCKET, owner, "shared", {"acl": {"read": [f"{reader}:*"]}})
    name = ready_bucket(api, owner, "shared")["status"]["bucketName"]
    s3_as(api, object_store, owner).put_object(Bucket=name, Key="doc", Body=b"hello")

    as_reader, as_stranger = s3_as(api, object_store, reader), s3_as(api, object_store, stranger)
    assert as_reader.get_object(Bucket=name, Key="doc")["Body"].read() == b"hello"
    assert refused(lambda: as_reader.put_object(Bucket=name, Key="x", Body=b"x")) == "AccessDenied"
    assert refused(lambda: as_stranger.get_object(Bucket=name, Key="doc")) == "AccessDenied"
    anonymous = f"{object_store.endpoint}/{name}/doc"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(anonymous)

    # Write for the stranger, public read for everyone; then the reader's grant goes.
    patch(api, BUCKET, owner, "shared", {"acl": {"read": [".r:*"], "write": [f"{stranger}:*"]}})

    def granted() -> bool:
        try:
            as_stranger.put_object(Bucket=name, Key="from-stranger", Body=b"x")
        except ClientError:
            return False
        return True

    eventually(granted, "the stranger's write grant")
    assert urllib.request.urlopen(anonymous).read() == b"hello"
    assert refused(lambda: as_reader.put_object(Bucket=name, Key="y", Body=b"y")) == "AccessDenied"


def test_user_grants_and_unknown_projects_and_policies_are_refused(
    api: client.ApiClient, project
) -> None:
    ns = project()
    make(api, BUCKET, ns, "users", {"acl": {"read": [f"{ns}:alice"]}})
    assert "names a user" in failed(api, ns, "users")
    make(api, BUCKET, ns, "nobody", {"acl": {"write": ["no-such-project:*"]}})
    assert failed(api, ns, "nobody") == "Project no-such-project named in the ACL does not exist"
    make(api, BUCKET, ns, "platinum", {"storagePolicy": "platinum"})
    assert failed(api, ns, "platinum") == (
        "unknown storage policy platinum (storage policies: cold, gold, silver)"
    )
    make(api, BUCKET, ns, "cold", {"storagePolicy": "cold"})
    assert ready_bucket(api, ns, "cold")["status"]["storageClass"] == "STANDARD_IA"


def test_quota_is_enforced_by_the_store_and_usage_is_reported(
    api: client.ApiClient, project, object_store: ObjectStoreServer
) -> None:
    ns = project()
    make(api, BUCKET, ns, "small", {"quota": {"objects": 2}})
    name = ready_bucket(api, ns, "small")["status"]["bucketName"]
    mine = s3_as(api, object_store, ns)
    for key in ("one", "two"):
        mine.put_object(Bucket=name, Key=key, Body=b"12345")
    eventually(
        lambda: bucket(api, ns, "small")["status"].get("usage") == {"bytes": "10", "objects": 2},
        "usage counted",
    )

    def full() -> bool:
        try:
            mine.put_object(Bucket=name, Key="three", Body=b"x")
        except ClientError as error:
            return error.response["Error"]["Code"] == "AccessDenied"
        mine.delete_object(Bucket=name, Key="three")
        return False

    eventually(full, "writes refused at the quota")
    assert "quota reached" in bucket(api, ns, "small")["status"]["conditions"][0]["message"]
    mine.delete_object(Bucket=name, Key="two")  # deleting frees room, as in Swift
    eventually(lambda: not full(), "writes allowed again")


def test_versioning_on_and_off(
    api: client.ApiClient, project, object_store: ObjectStoreServer
) -> None:
    ns = project()
    make(api, BUCKET, ns, "history", {"versioning": True})
    name = ready_bucket(api, ns, "history")["status"]["bucketName"]
    store = admin_s3(object_store)
    assert store.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    mine = s3_as(api, object_store, ns)
    for body in (b"v1", b"v2"):
        mine.put_object(Bucket=name, Key="doc", Body=body)
    assert len(mine.list_object_versions(Bucket=name)["Versions"]) == 2
    patch(api, BUCKET, ns, "history", {"versioning": False})
    eventually(
        lambda: store.get_bucket_versioning(Bucket=name).get("Status") == "Suspended", "suspended"
    )


def test_presigned_urls_work_until_they_expire(
    api: client.ApiClient, project, object_store: ObjectStoreServer
) -> None:
    ns = project()
    make(api, BUCKET, ns, "share", {})
    name = ready_bucket(api, ns, "share")["status"]["bucketName"]
    s3_as(api, object_store, ns).put_object(Bucket=name, Key="f.txt", Body=b"temp")
    url = presign(api, ns, "share", "f.txt", expires=2)
    assert urllib.request.urlopen(url).read() == b"temp"
    time.sleep(3)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(url)
    assert expired.value.code == 403


def test_delete_policy_empties_the_bucket_and_waits_out_an_outage(
    api: client.ApiClient, project, object_store: ObjectStoreServer
) -> None:
    ns = project()
    make(api, BUCKET, ns, "scratch", {"deletionPolicy": "Delete", "versioning": True})
    name = ready_bucket(api, ns, "scratch")["status"]["bucketName"]
    mine = s3_as(api, object_store, ns)
    for body in (b"1", b"2"):
        mine.put_object(Bucket=name, Key="k", Body=body)
    store = admin_s3(object_store)

    object_store.stop()
    try:
        delete(api, ns, "scratch")
        message = failed(api, ns, "scratch", phase="Deleting")
        assert message.startswith(f"waiting to delete bucket {name}: object store")
        assert bucket(api, ns, "scratch"), "the Bucket must wait while the store is away"
    finally:
        object_store.start()
    eventually(lambda: not bucket(api, ns, "scratch"), "the Bucket gone once the store is back")
    assert refused(lambda: store.head_bucket(Bucket=name)) in ("404", "NoSuchBucket")
