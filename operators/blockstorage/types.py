"""Volume types: the cloud operator's mapping of Cinder volume types to storage.

Read from the ConfigMap `ostack-volume-types` in the operators' namespace
(`OSTACK_NAMESPACE`, default `ostack-system`), key `types.yaml`:

    default: standard
    types:
      standard: {storageClass: standard, snapshotClass: standard, extendable: true}
      fast: {storageClass: ssd, accessModes: [ReadWriteOnce], extendable: false}

Without the ConfigMap, one type `standard` maps to the cluster's default StorageClass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

CONFIG_MAP = "ostack-volume-types"
NAMESPACE = os.environ.get("OSTACK_NAMESPACE", "ostack-system")


@dataclass(frozen=True)
class VolumeType:
    name: str
    storage_class: str | None = None
    """None: the cluster's default StorageClass."""
    snapshot_class: str | None = None
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    extendable: bool = True


@dataclass(frozen=True)
class Catalogue:
    default: str
    types: dict[str, VolumeType] = field(default_factory=dict)

    def resolve(self, name: str | None) -> VolumeType:
        """The type a Volume asks for; ValueError naming the known ones if there is none."""
        wanted = name or self.default
        if wanted not in self.types:
            known = ", ".join(sorted(self.types))
            raise ValueError(f"unknown volume type {wanted} (volume types: {known})")
        return self.types[wanted]


BUILT_IN = Catalogue("standard", {"standard": VolumeType("standard")})


def parse(text: str) -> Catalogue:
    """The catalogue in a ConfigMap's `types.yaml`."""
    raw: dict[str, Any] = yaml.safe_load(text) or {}
    types = {
        name: VolumeType(
            name=name,
            storage_class=entry.get("storageClass"),
            snapshot_class=entry.get("snapshotClass"),
            access_modes=tuple(entry.get("accessModes") or ("ReadWriteOnce",)),
            extendable=bool(entry.get("extendable", True)),
        )
        for name, entry in (raw.get("types") or {}).items()
    }
    default = raw.get("default") or (sorted(types)[0] if types else "standard")
    return Catalogue(default, types)
