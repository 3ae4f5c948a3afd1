"""Nova's classic flavors, shipped as KubeVirt VirtualMachineClusterInstancetypes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INSTANCETYPES = "instancetype.kubevirt.io/v1beta1"
DISK_ANNOTATION = "ostack.dev/flavor-disk"
"""An instancetype has no disk size; Nova's flavors do, so it rides on an annotation."""


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram: str
    disk: str


CLASSIC = (
    Flavor("m1.tiny", 1, "512Mi", "1Gi"),
    Flavor("m1.small", 1, "2Gi", "20Gi"),
    Flavor("m1.medium", 2, "4Gi", "40Gi"),
    Flavor("m1.large", 4, "8Gi", "80Gi"),
    Flavor("m1.xlarge", 8, "16Gi", "160Gi"),
)


def instancetype(flavor: Flavor) -> dict[str, Any]:
    return {
        "apiVersion": INSTANCETYPES,
        "kind": "VirtualMachineClusterInstancetype",
        "metadata": {
            "name": flavor.name,
            "labels": {"app.kubernetes.io/part-of": "ostack"},
            "annotations": {DISK_ANNOTATION: flavor.disk},
        },
        "spec": {"cpu": {"guest": flavor.vcpus}, "memory": {"guest": flavor.ram}},
    }


def instancetypes() -> list[dict[str, Any]]:
    return [instancetype(f) for f in CLASSIC]
