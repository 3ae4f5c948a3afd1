"""Swift's TempURL for a Bucket: a presigned S3 URL that works until it expires.

    python -m operators.objectstorage.tempurl -n demo assets report.pdf --expires 1h
    python -m operators.objectstorage.tempurl -n demo assets upload.bin --method PUT

The URL is signed locally with the Project's key from its credentials Secret, read with
your own kubeconfig: whoever may read that Secret (a Project admin) may hand out URLs,
as whoever holds a Swift account's TempURL key may. Nothing is sent to the store until
the URL is used, and the store checks the signature and expiry itself.
"""

from __future__ import annotations

import argparse
import base64
import re
from typing import Any

import boto3
from botocore.config import Config
from kubernetes import client, config

from operators.objectstorage.api import BUCKET

METHODS = {
    "GET": "get_object",
    "PUT": "put_object",
    "HEAD": "head_object",
    "DELETE": "delete_object",
}
MAX_EXPIRY = 7 * 24 * 3600
"""SigV4's own limit: a presigned URL lives at most a week."""


def seconds(text: str) -> int:
    """`90`, `90s`, `15m`, `2h` or `7d` in seconds."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise ValueError(
            f"expiry {text!r} is not a number of seconds, minutes (m), hours (h) or days (d)"
        )
    value = int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    if not 1 <= value <= MAX_EXPIRY:
        raise ValueError(f"expiry must be between 1s and 7d, not {text}")
    return value


def presign(
    api: client.ApiClient, namespace: str, bucket: str, key: str, expires: int, method: str = "GET"
) -> str:
    """A presigned URL for one object of a Ready Bucket."""
    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        BUCKET.group, BUCKET.api_version.split("/")[1], namespace, BUCKET.plural, bucket
    )
    status = found.get("status") or {}
    if status.get("phase") != "Ready":
        raise RuntimeError(f"Bucket {bucket} is not Ready (phase {status.get('phase')})")
    secret = client.CoreV1Api(api).read_namespaced_secret(status["credentialsSecret"], namespace)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
    s3 = boto3.client(
        "s3",
        endpoint_url=status["endpoint"],
        region_name=data.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=data["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=data["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    return s3.generate_presigned_url(
        METHODS[method],
        Params={"Bucket": status["bucketName"], "Key": key},
        ExpiresIn=expires,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bucket")
    parser.add_argument("object")
    parser.add_argument("-n", "--namespace", required=True, help="the Project's namespace")
    parser.add_argument("--expires", default="1h", help="lifetime: 90s, 15m, 2h, 7d (max)")
    parser.add_argument("--method", default="GET", choices=sorted(METHODS))
    args = parser.parse_args(argv)
    try:
        lifetime = seconds(args.expires)
    except ValueError as problem:
        parser.error(str(problem))
    config.load_kube_config()
    with client.ApiClient() as api:
        print(presign(api, args.namespace, args.bucket, args.object, lifetime, args.method))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
