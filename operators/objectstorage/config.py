"""The object store the cloud operator runs, as the objectstorage service reads it.

The ConfigMap `ostack-object-store` in the operators' namespace (`OSTACK_NAMESPACE`,
default `ostack-system`), key `config.yaml`:

    endpoint: https://s3.example.org      # the S3 endpoint tenants and ostack use
    region: us-east-1
    admin: versitygw                      # whose admin API makes per-Project accounts
    adminCredentialsSecret: ostack-object-store-admin   # keys accessKey, secretKey
    defaultStoragePolicy: silver
    storagePolicies:
      gold: {description: 3 replicas, placement: "default:gold", storageClass: STANDARD}
      silver: {description: 2 replicas}
      cold: {description: erasure coded, storageClass: GLACIER_IR}

`placement` is passed as the bucket's LocationConstraint (Ceph RGW reads
`<zonegroup>:<placement-target>` there); `storageClass` is the class objects should be
written with, published in the Bucket's status. Without the ConfigMap no object store is
configured and Buckets say so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

CONFIG_MAP = "ostack-object-store"
NAMESPACE = os.environ.get("OSTACK_NAMESPACE", "ostack-system")
ADMIN_APIS = ("versitygw",)


@dataclass(frozen=True)
class StoragePolicy:
    name: str
    description: str = ""
    placement: str | None = None
    storage_class: str | None = None


@dataclass(frozen=True)
class StoreConfig:
    endpoint: str
    region: str
    admin: str
    admin_credentials_secret: str
    default_policy: str | None = None
    policies: dict[str, StoragePolicy] = field(default_factory=dict)

    def policy(self, name: str | None) -> StoragePolicy | None:
        """The storage policy a Bucket asks for (None: the store's default placement);
        ValueError naming the known ones if there is no such policy."""
        wanted = name or self.default_policy
        if wanted is None:
            return None
        if wanted not in self.policies:
            known = ", ".join(sorted(self.policies)) or "none"
            raise ValueError(f"unknown storage policy {wanted} (storage policies: {known})")
        return self.policies[wanted]


def parse(text: str) -> StoreConfig:
    raw: dict[str, Any] = yaml.safe_load(text) or {}
    missing = [k for k in ("endpoint", "adminCredentialsSecret") if not raw.get(k)]
    if missing:
        raise ValueError(f"ConfigMap {CONFIG_MAP} lacks {', '.join(missing)}")
    admin = raw.get("admin", "versitygw")
    if admin not in ADMIN_APIS:
        raise ValueError(f"admin API {admin} is not supported (supported: {', '.join(ADMIN_APIS)})")
    policies = {
        name: StoragePolicy(
            name,
            entry.get("description", ""),
            entry.get("placement"),
            entry.get("storageClass"),
        )
        for name, entry in (raw.get("storagePolicies") or {}).items()
    }
    return StoreConfig(
        endpoint=raw["endpoint"].rstrip("/"),
        region=raw.get("region", "us-east-1"),
        admin=admin,
        admin_credentials_secret=raw["adminCredentialsSecret"],
        default_policy=raw.get("defaultStoragePolicy"),
        policies=policies,
    )
