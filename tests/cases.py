"""Specs each kind must accept or refuse, shared by the model and the apiserver tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from operators.blockstorage.api import SNAPSHOT, VOLUME
from operators.common.kinds import Kind
from operators.compute.api import INSTANCE
from operators.containerinfra.api import CLUSTER
from operators.identity.api import PROJECT
from operators.image.api import IMAGE
from operators.network.api import NETWORK, SECURITY_GROUP
from operators.objectstorage.api import BUCKET


@dataclass(frozen=True)
class Case:
    kind: Kind
    spec: dict[str, Any]
    message: str = ""
    """For refused cases: a part of the message the user must see."""
    old: dict[str, Any] | None = None
    """For transitions: the spec before the change."""
    name: str = "case"
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.kind.kind}-{self.label or self.message[:40] or 'ok'}"

    def object(self, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "apiVersion": self.kind.api_version,
            "kind": self.kind.kind,
            "metadata": {"name": self.name},
            "spec": copy.deepcopy(self.spec if spec is None else spec),
        }


IMAGE_OK = {"source": {"http": {"url": "http://x.example/a.qcow2"}}, "diskFormat": "qcow2"}
INSTANCE_OK = {"flavor": "m1.small", "image": {"name": "cirros"}}
CLUSTER_OK = {
    "kubernetesVersion": "v1.33.1",
    "image": {"name": "cirros"},
    "controlPlane": {"replicas": 1, "flavor": "m1.medium"},
}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(base), **changes}


ACCEPTED: list[Case] = [
    Case(PROJECT, {}, label="empty"),
    Case(
        PROJECT,
        {
            "members": [
                {"user": "alice", "roles": ["admin"]},
                {"group": "devs", "roles": ["member", "reader"]},
                {"serviceAccount": "ci/deployer", "roles": ["member"]},
            ],
            "quotas": {"instances": 10, "cores": 20, "ram": "40Gi", "gigabytes": "500Gi"},
            "deletionPolicy": "Cascade",
        },
        label="full",
    ),
    Case(PROJECT, {"namespace": "tenant-a"}, name="tenant.a", label="dotted-name-with-namespace"),
    Case(IMAGE, IMAGE_OK, label="http"),
    Case(IMAGE, _with(IMAGE_OK, source={"registry": {"url": "docker://quay.io/c/f:40"}})),
    Case(
        IMAGE,
        _with(IMAGE_OK, source={"s3": {"url": "https://s3.x/b/a.img", "secretRef": "s3"}}),
        label="s3",
    ),
    Case(IMAGE, _with(IMAGE_OK, source={"upload": {}}, diskFormat="iso"), label="upload"),
    Case(IMAGE, _with(IMAGE_OK, source={"volume": {"name": "v"}}), label="volume"),
    Case(
        IMAGE,
        _with(
            IMAGE_OK,
            visibility="shared",
            sharedWith=["other"],
            properties={"hw_firmware_type": "uefi", "os_distro": "fedora"},
            checksum="sha256:0123abcd",
        ),
        label="shared-props",
    ),
    Case(INSTANCE, INSTANCE_OK, label="flavor-image"),
    Case(
        INSTANCE,
        {
            "resources": {"cpu": 2, "memory": "2Gi"},
            "bootVolume": {"name": "root"},
            "networks": [{"name": "a", "fixedIP": "10.0.0.5"}, {"name": "b"}],
            "userDataSecret": {"name": "ud", "key": "userdata"},
            "powerState": "Paused",
            "serverGroup": {"name": "g", "policy": "anti-affinity"},
            "rebootRequestedAt": "2026-01-01T00:00:00Z",
        },
        label="resources-bootvolume",
    ),
    Case(VOLUME, {"size": "10Gi"}, label="blank"),
    Case(VOLUME, {"size": "10Gi", "source": {"snapshot": {"name": "s"}}}, label="from-snapshot"),
    Case(SNAPSHOT, {"volume": {"name": "data"}}),
    Case(NETWORK, {"type": "pod", "subnets": [{"cidr": "10.20.0.0/24"}]}, label="pod"),
    Case(
        NETWORK,
        {
            "type": "vlan",
            "vlanId": 100,
            "subnets": [
                {
                    "cidr": "192.168.10.0/24",
                    "gateway": "192.168.10.1",
                    "allocationPools": [{"start": "192.168.10.10", "end": "192.168.10.99"}],
                    "dnsNameservers": ["192.168.10.1", "2001:db8::53"],
                }
            ],
            "allowFrom": [{"project": "other"}, {"cidr": "192.0.2.0/24"}],
        },
        label="vlan",
    ),
    Case(
        SECURITY_GROUP,
        {
            "rules": [
                {"direction": "ingress", "protocol": "tcp", "portRangeMin": 80},
                {"direction": "ingress", "remoteGroup": "web"},
                {"direction": "egress", "remoteCIDR": "0.0.0.0/0"},
            ]
        },
    ),
    Case(BUCKET, {"acl": {"read": [".r:*", ".rlistings", "demo:*"], "write": ["demo:bob"]}}),
    Case(BUCKET, {"acl": {"write": ["demo:*"]}}, label="write-only"),
    Case(BUCKET, {"storagePolicy": "gold", "quota": {"objects": 10}}, label="quota"),
    Case(CLUSTER, CLUSTER_OK, label="minimal"),
    Case(
        CLUSTER,
        _with(
            CLUSTER_OK,
            nodeGroups=[
                {
                    "name": "w",
                    "replicas": 2,
                    "flavor": "m1.large",
                    "minReplicas": 1,
                    "maxReplicas": 5,
                }
            ],
        ),
        label="autoscaled",
    ),
]

REFUSED: list[Case] = [
    Case(
        PROJECT,
        {"members": [{"user": "a", "group": "b", "roles": ["admin"]}]},
        "exactly one of user, group or serviceAccount",
    ),
    Case(PROJECT, {"members": [{"user": "a", "roles": ["owner"]}]}, "owner", label="bad-role"),
    Case(PROJECT, {}, "named like a namespace", name="tenant.a"),
    Case(IMAGE, _with(IMAGE_OK, diskFormat="ami"), "KubeVirt cannot boot"),
    Case(IMAGE, _with(IMAGE_OK, containerFormat="ova"), "CDI cannot unpack"),
    Case(
        IMAGE,
        _with(IMAGE_OK, source={"http": {"url": "http://a/b"}, "upload": {}}),
        "exactly one of http, registry, s3, upload or volume",
    ),
    Case(IMAGE, _with(IMAGE_OK, source={}), "exactly one of http", label="no-source"),
    Case(IMAGE, _with(IMAGE_OK, sharedWith=["x"]), "only used with visibility: shared"),
    Case(IMAGE, _with(IMAGE_OK, properties={"hw_disk_bus": "ide"}), "fixed set of values"),
    Case(
        IMAGE,
        _with(IMAGE_OK, source={"upload": {}}, checksum="md5:00"),
        "verified by CDI on http imports only",
    ),
    Case(INSTANCE, {"image": {"name": "cirros"}}, "either flavor", label="no-flavor"),
    Case(
        INSTANCE,
        _with(INSTANCE_OK, resources={"cpu": 1, "memory": "1Gi"}),
        "either flavor",
        label="flavor-and-resources",
    ),
    Case(INSTANCE, _with(INSTANCE_OK, bootVolume={"name": "v"}), "either image or bootVolume"),
    Case(
        INSTANCE,
        _with(INSTANCE_OK, networks=[{"name": "n", "fixedIP": "10.0.0.300"}]),
        "fixedIP must be an IPv4 or IPv6 address",
    ),
    Case(
        INSTANCE,
        _with(INSTANCE_OK, userData="x", userDataSecret={"name": "s", "key": "k"}),
        "not both",
        label="userdata-twice",
    ),
    Case(
        INSTANCE,
        {"flavor": "m1.small", "bootVolume": {"name": "v"}, "rootDiskSize": "20Gi"},
        "rootDiskSize applies to image boots",
    ),
    Case(VOLUME, {"size": "0"}, "greater than zero"),
    Case(
        VOLUME,
        {"size": "1Gi", "source": {"image": {"name": "i"}, "volume": {"name": "v"}}},
        "at most one of image, volume or snapshot",
    ),
    Case(NETWORK, {"subnets": [{"cidr": "10.20.0.1/24"}]}, "network address", label="host-bits"),
    Case(NETWORK, {"subnets": [{"cidr": "banana"}]}, "network address", label="not-cidr"),
    Case(
        NETWORK,
        {"subnets": [{"cidr": "10.20.0.0/24", "gateway": "10.30.0.1"}]},
        "gateway must be an address inside",
    ),
    Case(
        NETWORK,
        {
            "subnets": [
                {
                    "cidr": "10.20.0.0/24",
                    "allocationPools": [{"start": "10.20.0.10", "end": "10.21.0.1"}],
                }
            ]
        },
        "inside the subnet's cidr",
        label="pool-outside",
    ),
    Case(NETWORK, {"type": "vlan"}, "vlanId is required"),
    Case(NETWORK, {"type": "bridge", "vlanId": 5}, "vlanId is required", label="vlan-on-bridge"),
    Case(
        NETWORK, {"allowFrom": [{"project": "a", "cidr": "10.0.0.0/8"}]}, "exactly one of network"
    ),
    Case(
        SECURITY_GROUP,
        {"rules": [{"direction": "ingress", "protocol": "icmp"}]},
        "cannot be expressed as a Kubernetes NetworkPolicy",
    ),
    Case(
        SECURITY_GROUP,
        {"rules": [{"direction": "ingress", "portRangeMin": 22}]},
        "port ranges need protocol",
    ),
    Case(
        SECURITY_GROUP,
        {
            "rules": [
                {"direction": "ingress", "protocol": "tcp", "portRangeMin": 90, "portRangeMax": 80}
            ]
        },
        "portRangeMin that is not larger",
    ),
    Case(
        SECURITY_GROUP,
        {"rules": [{"direction": "egress", "remoteCIDR": "0.0.0.0/0", "remoteGroup": "g"}]},
        "not both",
    ),
    Case(BUCKET, {"acl": {"write": [".r:*"]}}, "Swift has no public write"),
    Case(BUCKET, {"acl": {"read": ["everyone"]}}, "read ACL entries are"),
    Case(
        CLUSTER,
        _with(CLUSTER_OK, controlPlane={"replicas": 2, "flavor": "m1.medium"}),
        "must be odd",
    ),
    Case(
        CLUSTER,
        _with(
            CLUSTER_OK,
            nodeGroups=[
                {"name": "w", "replicas": 9, "flavor": "f", "minReplicas": 1, "maxReplicas": 5}
            ],
        ),
        "minReplicas <= replicas <= maxReplicas",
    ),
    Case(
        CLUSTER,
        _with(
            CLUSTER_OK, nodeGroups=[{"name": "w", "replicas": 1, "flavor": "f", "minReplicas": 1}]
        ),
        "needs both minReplicas and maxReplicas",
    ),
]

TRANSITIONS: list[Case] = [
    Case(VOLUME, {"size": "5Gi"}, "size may only grow", old={"size": "10Gi"}),
    Case(
        VOLUME,
        {"size": "10Gi", "source": {"image": {"name": "b"}}},
        "source cannot change",
        old={"size": "10Gi", "source": {"image": {"name": "a"}}},
    ),
    Case(PROJECT, {"namespace": "b"}, "spec.namespace cannot change", old={"namespace": "a"}),
    Case(NETWORK, {"type": "bridge"}, "type cannot change", old={"type": "pod"}),
    Case(
        SNAPSHOT, {"volume": {"name": "b"}}, "volume cannot change", old={"volume": {"name": "a"}}
    ),
    Case(
        BUCKET,
        {"storagePolicy": "gold"},
        "storagePolicy cannot change",
        old={"storagePolicy": "silver"},
    ),
]
