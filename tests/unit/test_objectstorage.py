"""The objectstorage service's pure parts: Swift ACLs as bucket policies, names on the
store, the cloud operator's configuration and TempURL lifetimes."""

from __future__ import annotations

import json
import re

import pytest

from operators.objectstorage import acl, config
from operators.objectstorage.api import Acl
from operators.objectstorage.tempurl import seconds


def statements(policy: str) -> list[dict]:
    return json.loads(policy)["Statement"]


def test_the_owner_alone_without_grants() -> None:
    policy = acl.bucket_policy("demo-data", "demo", acl.grants(Acl()), over_quota=False)
    assert statements(policy) == [
        {
            "Effect": "Allow",
            "Principal": {"AWS": ["ostack-demo"]},
            "Action": ["s3:*"],
            "Resource": ["arn:aws:s3:::demo-data", "arn:aws:s3:::demo-data/*"],
        }
    ]


def test_project_grants_public_access_and_the_quota_deny() -> None:
    granted = acl.grants(Acl(read=["ops:*", ".r:*", ".rlistings", "audit:*"], write=["ops:*"]))
    assert granted == acl.Grants(("audit", "ops"), ("ops",), True, True)
    found = statements(acl.bucket_policy("b", "demo", granted, over_quota=True))
    summary = [(s["Effect"], s["Principal"], s["Action"]) for s in found[1:]]
    assert summary == [
        ("Allow", {"AWS": ["ostack-audit", "ostack-ops"]}, list(acl.READ_ACTIONS)),
        ("Allow", {"AWS": ["ostack-ops"]}, list(acl.WRITE_ACTIONS)),
        ("Allow", "*", ["s3:GetObject"]),
        ("Allow", "*", ["s3:ListBucket"]),
        ("Deny", "*", ["s3:PutObject"]),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("demo:alice", "ACL entry demo:alice names a user"),
        ("*:alice", "ACL entry *:alice names a user of any Project"),
    ],
)
def test_user_grants_are_refused_with_what_to_do(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        acl.grants(Acl(read=[entry]))


def test_policy_text_is_stable_for_comparison() -> None:
    granted = acl.grants(Acl(read=["b:*", "a:*"]))
    assert acl.bucket_policy("x", "p", granted, False) == acl.bucket_policy(
        "x", "p", granted, False
    )


def test_quota_is_reached_at_either_limit() -> None:
    assert not acl.over_quota(None, None, (10**12, 10**6))
    assert acl.over_quota(100, None, (100, 1))
    assert not acl.over_quota(100, 5, (99, 4))
    assert acl.over_quota(None, 5, (0, 5))


def test_bucket_names_are_unique_valid_and_short_enough() -> None:
    assert acl.bucket_name("demo", "assets") == "demo-assets"
    long = acl.bucket_name("p" * 63, "b" * 63)
    assert len(long) <= 63 and long != acl.bucket_name("p" * 63, "b" * 62 + "c")


def test_configuration_and_storage_policies() -> None:
    parsed = config.parse(
        "endpoint: http://s3.example.org/\nadminCredentialsSecret: admin\n"
        "defaultStoragePolicy: silver\n"
        "storagePolicies: {gold: {placement: 'default:gold', storageClass: STANDARD},"
        " silver: {}}\n"
    )
    assert parsed.endpoint == "http://s3.example.org"
    assert parsed.region == "us-east-1"
    assert parsed.policy(None).name == "silver"
    assert parsed.policy("gold").placement == "default:gold"
    with pytest.raises(
        ValueError, match=r"unknown storage policy cold \(storage policies: gold, silver\)"
    ):
        parsed.policy("cold")
    with pytest.raises(ValueError, match="lacks endpoint, adminCredentialsSecret"):
        config.parse("region: x\n")
    with pytest.raises(ValueError, match="admin API minio is not supported"):
        config.parse("endpoint: e\nadminCredentialsSecret: s\nadmin: minio\n")


@pytest.mark.parametrize(
    ("text", "value"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800)]
)
def test_tempurl_lifetimes(text: str, value: int) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("text", ["0", "8d", "soon", "-5"])
def test_tempurl_lifetimes_out_of_range(text: str) -> None:
    with pytest.raises(ValueError):
        seconds(text)
