"""Pure builders: a Cluster and what it refers to in, its Cluster API objects out.

Cluster API v1beta2 with the KubeVirt infrastructure provider (CAPK, v1alpha1):

    Cluster <name>                      -> KubevirtCluster <name>
                                        -> KubeadmControlPlane <name>-control-plane
                                             -> KubevirtMachineTemplate <name>-control-plane-<hash>
    per node group: MachineDeployment <name>-<group>
                                             -> KubevirtMachineTemplate <name>-<group>-<hash>
                                             -> KubeadmConfigTemplate <name>-<group>

Machine templates are immutable by Cluster API's convention: a changed flavor or image
is a new template (the hash of its spec in the name), to which the control plane or
machine deployment then rolls.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from operators.common import children
from operators.common.schema import bytes_quantity
from operators.containerinfra.api import ClusterSpec

CAPI = "cluster.x-k8s.io"
CAPI_VERSION = f"{CAPI}/v1beta2"
CONTROL_PLANE_GROUP = "controlplane.cluster.x-k8s.io"
BOOTSTRAP_GROUP = "bootstrap.cluster.x-k8s.io"
INFRA_GROUP = "infrastructure.cluster.x-k8s.io"
INFRA_VERSION = f"{INFRA_GROUP}/v1alpha1"
CLUSTER_NAME_LABEL = f"{CAPI}/cluster-name"
NODE_GROUP_LABEL = "containerinfra.ostack.dev/node-group"
AUTOSCALER_MIN = f"{CAPI}/cluster-api-autoscaler-node-group-min-size"
AUTOSCALER_MAX = f"{CAPI}/cluster-api-autoscaler-node-group-max-size"
POD_CIDR = "10.243.0.0/16"
SERVICE_CIDR = "10.95.0.0/16"
NODE_USER = "capk"
CONTROL_PLANE = "control-plane"
"""The role of control-plane nodes (node groups are named by their group)."""


@dataclass(frozen=True)
class NodeImage:
    """Where node root disks are cloned from, and their least size."""

    namespace: str
    data_source: str
    min_disk: Decimal | None = None


@dataclass(frozen=True)
class Plan:
    """Everything the Cluster API objects are built from, resolved by the controller."""

    image: NodeImage
    flavor_disks: dict[str, Decimal | None]
    """Each flavor's root disk size (instancetypes carry it as an annotation)."""
    network_labels: dict[str, str]
    """Labels putting the nodes on the Cluster's pod Network, if it names one."""


def control_plane_name(name: str) -> str:
    return f"{name}-control-plane"


def group_name(name: str, group: str) -> str:
    return f"{name}-{group}"


def kubeconfig_secret(name: str) -> str:
    """Cluster API's convention: the admin kubeconfig of cluster X is Secret X-kubeconfig."""
    return f"{name}-kubeconfig"


def _meta(cluster: dict[str, Any], project: str, name: str) -> dict[str, Any]:
    return children.child_metadata(
        cluster,
        project,
        name,
        cluster["metadata"]["namespace"],
        labels={CLUSTER_NAME_LABEL: cluster["metadata"]["name"]},
    )


def _ref(group: str, kind: str, name: str) -> dict[str, str]:
    return {"apiGroup": group, "kind": kind, "name": name}


def capi_cluster(cluster: dict[str, Any], project: str) -> dict[str, Any]:
    name = cluster["metadata"]["name"]
    return {
        "apiVersion": CAPI_VERSION,
        "kind": "Cluster",
        "metadata": _meta(cluster, project, name),
        "spec": {
            "clusterNetwork": {
                "pods": {"cidrBlocks": [POD_CIDR]},
                "services": {"cidrBlocks": [SERVICE_CIDR]},
            },
            "controlPlaneRef": _ref(
                CONTROL_PLANE_GROUP, "KubeadmControlPlane", control_plane_name(name)
            ),
            "infrastructureRef": _ref(INFRA_GROUP, "KubevirtCluster", name),
        },
    }


def kubevirt_cluster(cluster: dict[str, Any], project: str) -> dict[str, Any]:
    """The API server is reached through a ClusterIP Service in the Project's namespace."""
    return {
        "apiVersion": INFRA_VERSION,
        "kind": "KubevirtCluster",
        "metadata": _meta(cluster, project, cluster["metadata"]["name"]),
        "spec": {"controlPlaneServiceTemplate": {"spec": {"type": "ClusterIP"}}},
    }


def _disk_size(flavor: str, plan: Plan) -> str:
    candidates = [plan.flavor_disks.get(flavor), plan.image.min_disk]
    present = [c for c in candidates if c]
    return bytes_quantity(max(present) if present else Decimal(10 * 2**30))


def machine_template(
    cluster: dict[str, Any], project: str, role: str, flavor: str, plan: Plan
) -> dict[str, Any]:
    """A KubevirtMachineTemplate: each node is a KubeVirt VM of `flavor`, booting from a
    clone of the Image, on the pod network (and the Cluster's pod Network's labels)."""
    vm_spec = {
        "runStrategy": "Always",
        "instancetype": {"kind": "VirtualMachineClusterInstancetype", "name": flavor},
        "dataVolumeTemplates": [
            {
                "metadata": {"name": "root"},
                "spec": {
                    "sourceRef": {
                        "kind": "DataSource",
                        "namespace": plan.image.namespace,
                        "name": plan.image.data_source,
                    },
                    "storage": {"resources": {"requests": {"storage": _disk_size(flavor, plan)}}},
                },
            }
        ],
        "template": {
            "metadata": {
                "labels": {
                    **children.child_labels(cluster, project),
                    NODE_GROUP_LABEL: role,
                    **plan.network_labels,
                }
            },
            "spec": {
                "domain": {
                    "devices": {
                        "disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                        "interfaces": [{"name": "default", "masquerade": {}}],
                    }
                },
                "networks": [{"name": "default", "pod": {}}],
                "volumes": [{"name": "root", "dataVolume": {"name": "root"}}],
            },
        },
    }
    spec = {"template": {"spec": {"virtualMachineTemplate": {"spec": vm_spec}}}}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
    name = cluster["metadata"]["name"]
    prefix = control_plane_name(name) if role == CONTROL_PLANE else group_name(name, role)
    return {
        "apiVersion": INFRA_VERSION,
        "kind": "KubevirtMachineTemplate",
        "metadata": _meta(cluster, project, f"{prefix}-{digest}"),
        "spec": spec,
    }


def _users(spec: ClusterSpec) -> list[dict[str, Any]]:
    if not spec.key_pairs:
        return []
    return [
        {
            "name": NODE_USER,
            "sshAuthorizedKeys": list(spec.key_pairs),
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
        }
    ]


def control_plane(
    cluster: dict[str, Any], project: str, spec: ClusterSpec, template: dict[str, Any]
) -> dict[str, Any]:
    name = cluster["metadata"]["name"]
    config: dict[str, Any] = {}
    if spec.key_pairs:
        config["users"] = _users(spec)
    body_spec: dict[str, Any] = {
        "replicas": spec.control_plane.replicas,
        "version": spec.kubernetes_version,
        "machineTemplate": {
            "spec": {
                "infrastructureRef": _ref(
                    INFRA_GROUP, "KubevirtMachineTemplate", template["metadata"]["name"]
                )
            }
        },
    }
    if config:
        body_spec["kubeadmConfigSpec"] = config
    return {
        "apiVersion": f"{CONTROL_PLANE_GROUP}/v1beta2",
        "kind": "KubeadmControlPlane",
        "metadata": _meta(cluster, project, control_plane_name(name)),
        "spec": body_spec,
    }


def config_template(cluster: dict[str, Any], project: str, spec: ClusterSpec, group: str):
    # kubeadm's own cloud-config bootstrap (stated: the schema wants a non-empty spec).
    template_spec: dict[str, Any] = {"format": "cloud-config"}
    if spec.key_pairs:
        template_spec["users"] = _users(spec)
    return {
        "apiVersion": f"{BOOTSTRAP_GROUP}/v1beta2",
        "kind": "KubeadmConfigTemplate",
        "metadata": _meta(cluster, project, group_name(cluster["metadata"]["name"], group)),
        "spec": {"template": {"spec": template_spec}},
    }


def machine_deployment(
    cluster: dict[str, Any],
    project: str,
    group: Any,
    version: str,
    template: dict[str, Any],
    replicas: bool = True,
) -> dict[str, Any]:
    """The workers of one node group. With autoscaling the cluster autoscaler owns the
    replica count between min and max: `replicas=False` leaves it out of what is applied."""
    name = cluster["metadata"]["name"]
    selector = {CLUSTER_NAME_LABEL: name, NODE_GROUP_LABEL: group.name}
    meta = _meta(cluster, project, group_name(name, group.name))
    meta["labels"][NODE_GROUP_LABEL] = group.name
    if group.min_replicas is not None:
        meta["annotations"] = {
            AUTOSCALER_MIN: str(group.min_replicas),
            AUTOSCALER_MAX: str(group.max_replicas),
        }
    spec: dict[str, Any] = {
        "clusterName": name,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": selector},
            "spec": {
                "clusterName": name,
                "version": version,
                "bootstrap": {
                    "configRef": _ref(
                        BOOTSTRAP_GROUP, "KubeadmConfigTemplate", group_name(name, group.name)
                    )
                },
                "infrastructureRef": _ref(
                    INFRA_GROUP, "KubevirtMachineTemplate", template["metadata"]["name"]
                ),
            },
        },
    }
    if replicas:
        spec["replicas"] = group.replicas
    return {
        "apiVersion": CAPI_VERSION,
        "kind": "MachineDeployment",
        "metadata": meta,
        "spec": spec,
    }


def node_count(spec: ClusterSpec) -> int:
    return spec.control_plane.replicas + sum(g.replicas for g in spec.node_groups)
