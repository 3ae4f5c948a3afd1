"""Cluster API's and CAPK's runtime, simulated: a Cluster's infrastructure, control plane
and machine deployments become ready, and its kubeconfig Secret appears.

Stands in for the CAPI, kubeadm control-plane and CAPK controllers: one step per
reconcile, each after `Delays.cluster_step`. The KubevirtCluster gets its endpoint (a
Service name, as CAPK's ClusterIP load balancer has), the Cluster copies it, the
KubeadmControlPlane reports its replicas ready at its spec's version (so a version change
is an upgrade that completes a step later), `<cluster>-kubeconfig` is written, each
MachineDeployment reports its replicas ready at its version, and the Cluster's status
sums them up, phase Provisioned with Available=True. The Cluster holds Cluster API's
finalizer until a step after its deletion, as tearing down the machines takes a while
(and for as long as it carries `sim.ostack.dev/hold-deletion`).
"""

from __future__ import annotations

import base64
import logging

import yaml

from operators.devcluster.simulator.common import (
    HOLD_DELETION,
    annotation,
    condition,
    conditions,
    now,
    status_patch,
)
from operators.devcluster.simulator.engine import Context, Source, log_transition
from operators.devcluster.simulator.kube import Obj, Resource, meta
from operators.devcluster.simulator.workqueue import Key

log = logging.getLogger(__name__)

CLUSTER = Resource("cluster.x-k8s.io", "v1beta2", "clusters", "Cluster")
CONTROL_PLANE = Resource(
    "controlplane.cluster.x-k8s.io", "v1beta2", "kubeadmcontrolplanes", "KubeadmControlPlane"
)
DEPLOYMENT = Resource("cluster.x-k8s.io", "v1beta2", "machinedeployments", "MachineDeployment")
INFRASTRUCTURE = Resource(
    "infrastructure.cluster.x-k8s.io", "v1alpha1", "kubevirtclusters", "KubevirtCluster"
)
SECRET = Resource("", "v1", "secrets", "Secret", core="secret")
CLUSTER_NAME = "cluster.x-k8s.io/cluster-name"
FINALIZER = "cluster.cluster.x-k8s.io"
API_PORT = 6443


class Clusters:
    """The reconciler of Cluster API Clusters and everything they reference (key "capi")."""

    kind = "capi"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sources(self) -> list[Source]:
        def by_label(obj: Obj) -> list[Key]:
            name = (meta(obj).get("labels") or {}).get(CLUSTER_NAME)
            return [Key(self.kind, meta(obj)["namespace"], name)] if name else []

        return [
            Source(CLUSTER, lambda c: [Key(self.kind, meta(c)["namespace"], meta(c)["name"])]),
            Source(CONTROL_PLANE, by_label),
            Source(DEPLOYMENT, by_label),
            Source(INFRASTRUCTURE, by_label),
        ]

    def _wait(self, key: Key, step: str) -> float:
        return self.ctx.timers.remaining(key, step, self.ctx.delays.cluster_step)

    def reconcile(self, key: Key) -> float | None:
        kube = self.ctx.kube
        cluster = kube.get(CLUSTER, key.name, key.namespace)
        if cluster is None:
            self.ctx.timers.forget(key)
            return None
        finalizers = meta(cluster).get("finalizers") or []
        if meta(cluster).get("deletionTimestamp"):
            if annotation(cluster, HOLD_DELETION) is not None:
                return None  # its removal brings us back
            return self._tear_down(key, finalizers)
        if FINALIZER not in finalizers:
            kube.patch(
                CLUSTER,
                key.name,
                {"metadata": {"finalizers": [*finalizers, FINALIZER]}},
                key.namespace,
            )
            return None
        spec = cluster.get("spec") or {}
        infra = kube.get(INFRASTRUCTURE, spec["infrastructureRef"]["name"], key.namespace)
        if infra is None:
            return self._status(key, cluster, "Pending", None, [])
        endpoint = {"host": f"{key.name}-lb.{key.namespace}.svc", "port": API_PORT}
        if not (infra.get("status") or {}).get("ready"):
            remaining = self._wait(key, "infrastructure")
            if remaining:
                return remaining
            kube.patch(
                INFRASTRUCTURE,
                meta(infra)["name"],
                {"spec": {"controlPlaneEndpoint": endpoint}},
                key.namespace,
            )
            kube.patch_status(INFRASTRUCTURE, meta(infra)["name"], {"ready": True}, key.namespace)
            log_transition(log, f"KubevirtCluster {key.namespace}/{key.name}", None, "ready")
            return None
        if spec.get("controlPlaneEndpoint") != endpoint:
            kube.patch(
                CLUSTER, key.name, {"spec": {"controlPlaneEndpoint": endpoint}}, key.namespace
            )
            return None
        plane = kube.get(CONTROL_PLANE, spec["controlPlaneRef"]["name"], key.namespace)
        if plane is None:
            return self._status(key, cluster, "Provisioning", None, [])
        waiting = self._control_plane(key, plane)
        if waiting is not None:
            return waiting
        self._kubeconfig(key, endpoint)
        deployments = [
            d
            for d in kube.list(DEPLOYMENT, key.namespace)[0]
            if (d.get("spec") or {}).get("clusterName") == key.name
        ]
        for deployment in deployments:
            waiting = self._deployment(key, deployment)
            if waiting is not None:
                return waiting
        return self._status(key, cluster, "Provisioned", plane, deployments)

    def _tear_down(self, key: Key, finalizers: list[str]) -> float | None:
        if FINALIZER not in finalizers:
            return None
        remaining = self._wait(key, "delete")
        if remaining:
            return remaining
        kept = [f for f in finalizers if f != FINALIZER]
        self.ctx.kube.patch(
            CLUSTER, key.name, {"metadata": {"finalizers": kept or None}}, key.namespace
        )
        log_transition(log, f"Cluster {key.namespace}/{key.name}", "Deleting", "gone")
        return None

    def _control_plane(self, key: Key, plane: Obj) -> float | None:
        spec, status = plane.get("spec") or {}, plane.get("status") or {}
        replicas = spec.get("replicas", 1)
        desired = {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "upToDateReplicas": replicas,
            "version": spec["version"],
            "initialization": {"controlPlaneInitialized": True},
        }
        patch = status_patch(status, desired)
        if not patch:
            return None
        remaining = self._wait(key, f"control-plane-{spec['version']}-{replicas}")
        if remaining:
            return remaining
        self.ctx.kube.patch_status(CONTROL_PLANE, meta(plane)["name"], patch, key.namespace)
        log_transition(
            log,
            f"KubeadmControlPlane {key.namespace}/{meta(plane)['name']}",
            status.get("version"),
            spec["version"],
        )
        return None

    def _deployment(self, key: Key, deployment: Obj) -> float | None:
        spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
        replicas = spec.get("replicas", 1)
        version = spec["template"]["spec"].get("version")
        desired = {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "upToDateReplicas": replicas,
            "phase": "Running",
            "versions": [{"version": version, "replicas": replicas}]
            if replicas and version
            else None,
        }
        patch = status_patch(status, desired)
        if not patch:
            return None
        name = meta(deployment)["name"]
        remaining = self._wait(key, f"deployment-{name}-{version}-{replicas}")
        if remaining:
            return remaining
        self.ctx.kube.patch_status(DEPLOYMENT, name, patch, key.namespace)
        return None

    def _kubeconfig(self, key: Key, endpoint: Obj) -> None:
        name = f"{key.name}-kubeconfig"
        if self.ctx.kube.get(SECRET, name, key.namespace) is not None:
            return
        server = f"https://{endpoint['host']}:{endpoint['port']}"
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": key.name, "cluster": {"server": server}}],
            "users": [{"name": f"{key.name}-admin", "user": {"token": "simulated"}}],
            "contexts": [
                {"name": key.name, "context": {"cluster": key.name, "user": f"{key.name}-admin"}}
            ],
            "current-context": key.name,
        }
        body = {
            "metadata": {"name": name, "labels": {CLUSTER_NAME: key.name}},
            "type": "cluster.x-k8s.io/secret",
            "data": {"value": base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()},
        }
        self.ctx.kube.create(SECRET, body, key.namespace)

    def _status(
        self, key: Key, cluster: Obj, phase: str, plane: Obj | None, deployments: list[Obj]
    ) -> None:
        status = cluster.get("status") or {}
        planes = (plane or {}).get("status") or {}
        ready_workers = sum((d.get("status") or {}).get("readyReplicas") or 0 for d in deployments)
        desired_workers = sum((d.get("spec") or {}).get("replicas", 1) for d in deployments)
        available = phase == "Provisioned"
        desired = {
            "phase": phase,
            "initialization": {
                "infrastructureProvisioned": phase != "Pending",
                "controlPlaneInitialized": available,
            },
            "controlPlane": {
                "desiredReplicas": ((plane or {}).get("spec") or {}).get("replicas", 0),
                "replicas": planes.get("replicas", 0),
                "readyReplicas": planes.get("readyReplicas", 0),
                "availableReplicas": planes.get("availableReplicas", 0),
                "upToDateReplicas": planes.get("upToDateReplicas", 0),
            },
            "workers": {
                "desiredReplicas": desired_workers,
                "replicas": desired_workers,
                "readyReplicas": ready_workers,
                "availableReplicas": ready_workers,
                "upToDateReplicas": ready_workers,
            },
            "conditions": conditions(
                status.get("conditions"),
                [
                    condition(
                        "Available",
                        available,
                        "Available" if available else "NotAvailable",
                        "the cluster is available"
                        if available
                        else f"the cluster is {phase.lower()}",
                    )
                ],
                now(),
            ),
        }
        patch = status_patch(status, desired)
        if patch:
            self.ctx.kube.patch_status(CLUSTER, key.name, patch, key.namespace)
            if "phase" in patch:
                log_transition(
                    log, f"Cluster {key.namespace}/{key.name}", status.get("phase"), phase
                )
        return None
