"""Magnum's API: the Cluster, a tenant Kubernetes cluster on KubeVirt VMs (Cluster API)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from operators.common.kinds import AGE, PHASE, READY, Column, Kind
from operators.common.refs import LocalRef, ProjectRef
from operators.common.schema import ApiModel, Name, PublicKey, Rule, list_map
from operators.common.status import Status
from operators.compute.api import FlavorName

GROUP = "containerinfra.ostack.dev"


class ControlPlane(ApiModel):
    """The cluster's control-plane nodes."""

    rules = (
        Rule(
            cel="self.replicas % 2 == 1",
            message="controlPlane.replicas must be odd (1, 3, 5, 7) so etcd keeps a quorum",
            check=lambda c: c.replicas % 2 == 1,
        ),
    )

    replicas: int = Field(default=1, ge=1, le=7)
    """Number of control-plane nodes: 1, 3, 5 or 7."""
    flavor: FlavorName
    """The flavor of the control-plane VMs (e.g. m1.medium)."""


class NodeGroup(ApiModel):
    """A group of worker nodes of one flavor (Magnum's node group)."""

    rules = (
        Rule(
            cel="has(self.minReplicas) == has(self.maxReplicas)",
            message="autoscaling needs both minReplicas and maxReplicas",
            check=lambda g: (g.min_replicas is None) == (g.max_replicas is None),
        ),
        Rule(
            cel="!has(self.minReplicas) || (self.minReplicas <= self.replicas"
            " && self.replicas <= self.maxReplicas)",
            message="a node group needs minReplicas <= replicas <= maxReplicas",
            check=lambda g: (
                g.min_replicas is None
                or g.max_replicas is None
                or g.min_replicas <= g.replicas <= g.max_replicas
            ),
        ),
    )

    name: Name
    """The group's name, unique in the Cluster."""
    replicas: int = Field(ge=0, le=1000)
    """Number of worker nodes."""
    flavor: FlavorName
    """The flavor of the worker VMs."""
    min_replicas: int | None = Field(default=None, ge=0, le=1000)
    """Lower bound for the cluster autoscaler."""
    max_replicas: int | None = Field(default=None, ge=1, le=1000)
    """Upper bound for the cluster autoscaler."""


class ClusterSpec(ApiModel):
    """A Kubernetes cluster whose nodes are KubeVirt VMs in the Project, built with Cluster
    API and its KubeVirt provider."""

    kubernetes_version: str = Field(pattern=r"^v1\.[0-9]+\.[0-9]+$", max_length=16)
    """The Kubernetes version, e.g. `v1.33.1`. Raising it upgrades the control plane, then
    the workers."""
    image: ProjectRef
    """The Image the nodes boot from."""
    control_plane: ControlPlane
    """The control-plane nodes."""
    node_groups: list[NodeGroup] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("name")
    )
    """Worker node groups."""
    network: LocalRef | None = None
    """The Network the nodes are attached to; the pod network when unset."""
    key_pairs: list[PublicKey] = Field(default_factory=list, max_length=32)
    """SSH public keys put on every node."""


class ClusterStatus(Status):
    """Observed state of a Cluster, from Cluster API."""

    phase: Literal["Pending", "Provisioning", "Ready", "Upgrading", "Deleting", "Error"] | None = (
        None
    )
    """Pending, Provisioning, Ready, Upgrading, Deleting or Error."""
    api_endpoint: str | None = None
    """The cluster's API server URL."""
    kubeconfig_secret: str | None = None
    """The Secret holding the admin kubeconfig (Cluster API's `<name>-kubeconfig`)."""
    control_plane_ready: int | None = None
    """Ready control-plane nodes."""
    workers_ready: int | None = None
    """Ready worker nodes."""
    kubernetes_version: str | None = None
    """The version the control plane runs."""


CLUSTER = Kind(
    group=GROUP,
    kind="Cluster",
    doc="A Magnum cluster: a tenant Kubernetes cluster on KubeVirt VMs, made of Cluster API"
    " objects with the KubeVirt infrastructure provider.",
    plural="clusters",
    short_names=("coe",),
    spec=ClusterSpec,
    status=ClusterStatus,
    columns=(
        PHASE,
        READY,
        Column("Version", ".spec.kubernetesVersion", description="Kubernetes version"),
        Column("Endpoint", ".status.apiEndpoint", description="API server URL"),
        Column("Workers", ".status.workersReady", "integer", description="Ready workers"),
        AGE,
    ),
)

KINDS = (CLUSTER,)
