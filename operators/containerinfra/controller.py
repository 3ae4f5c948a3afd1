"""Magnum as a kopf controller: Clusters become Cluster API objects with the KubeVirt
provider; status follows Cluster API; deletion waits for Cluster API to tear down."""

from __future__ import annotations

import json
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from operators.common import children, handlers, kube, tenancy
from operators.common.kinds import VERSION
from operators.common.reporting import report
from operators.common.schema import quantity_value
from operators.common.status import Reason
from operators.compute.flavors import DISK_ANNOTATION
from operators.containerinfra import builders
from operators.containerinfra.api import CLUSTER, ClusterSpec
from operators.image import lifecycle as image_lifecycle
from operators.image.api import IMAGE
from operators.image.builders import object_name as image_object
from operators.network import labels as net_labels
from operators.network.api import NETWORK

log = logging.getLogger(__name__)
MANAGER = "ostack-containerinfra"
CLUSTERS = (CLUSTER.group, VERSION, CLUSTER.plural)
OWNED = {children.MANAGED_BY: children.MANAGER, children.OWNER_KIND: CLUSTER.kind}
CAPI_CLUSTER = (builders.CAPI_VERSION, "Cluster")
KCP = (f"{builders.CONTROL_PLANE_GROUP}/v1beta2", "KubeadmControlPlane")
MD = (builders.CAPI_VERSION, "MachineDeployment")
# Everything a Cluster owns, for pruning what the spec no longer asks for.
OWNED_KINDS = (
    MD,
    (f"{builders.BOOTSTRAP_GROUP}/v1beta2", "KubeadmConfigTemplate"),
    (builders.INFRA_VERSION, "KubevirtMachineTemplate"),
)


class Refused(Exception):
    """The spec cannot be met as written."""


class Waiting(Exception):
    """Something the Cluster needs is not ready yet."""


@kopf.index(*CLUSTERS)
def clusters_by_image(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    image = spec.get("image") or {}
    return {(image.get("project"), image.get("name")): (namespace, name)}


# --- resolving what a Cluster refers to ------------------------------------------------------


def _image(spec: ClusterSpec, project: str, indexes) -> builders.NodeImage:
    image_project = spec.image.project or project
    namespace = tenancy.first(indexes["namespace_by_project"], image_project) or image_project
    image = kube.read(IMAGE.api_version, IMAGE.kind, spec.image.name, namespace)
    if image is None:
        raise Refused(f"Image {spec.image.name} does not exist in Project {image_project}")
    image_spec = IMAGE.parse_spec(image)
    refusal = image_lifecycle.refusal(image_spec, spec.image.name, image_project, project)
    if refusal:
        raise Refused(refusal)
    if (image.get("status") or {}).get("phase") != "active":
        raise Waiting(f"waiting for Image {spec.image.name} to be active")
    min_disk = quantity_value(image_spec.min_disk) if image_spec.min_disk else None
    return builders.NodeImage(namespace, image_object(image), min_disk)


def _flavor_disks(spec: ClusterSpec) -> dict[str, Any]:
    disks = {}
    for flavor in {spec.control_plane.flavor, *(g.flavor for g in spec.node_groups)}:
        found = kube.read(
            "instancetype.kubevirt.io/v1beta1", "VirtualMachineClusterInstancetype", flavor
        )
        if found is None:
            raise Refused(f"flavor {flavor} does not exist")
        disk = (found["metadata"].get("annotations") or {}).get(DISK_ANNOTATION)
        disks[flavor] = quantity_value(disk) if disk else None
    return disks


def _network_labels(spec: ClusterSpec, namespace: str, project: str) -> dict[str, str]:
    if spec.network is None:
        return {}
    network = kube.read(NETWORK.api_version, NETWORK.kind, spec.network.name, namespace)
    if network is None:
        raise Refused(f"Network {spec.network.name} does not exist")
    if NETWORK.parse_spec(network).type != "pod":
        raise Refused(
            f"Network {spec.network.name} is a secondary network; cluster nodes reach their API"
            " server over the pod network, so a Cluster's network must be a pod Network"
        )
    return net_labels.on_network(project, spec.network.name)


# --- reconciling a Cluster -------------------------------------------------------------------


@handlers.reconciler(CLUSTER)
def reconcile_cluster(body: kopf.Body, **indexes: Any) -> None:
    reconcile(kube.plain(body), indexes)


def reconcile(cluster: dict[str, Any], indexes: dict[str, Any]) -> None:
    namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    project = tenancy.project_of(namespace, indexes) or namespace
    try:
        spec: ClusterSpec = CLUSTER.parse_spec(cluster)
        plan = builders.Plan(
            _image(spec, project, indexes),
            _flavor_disks(spec),
            _network_labels(spec, namespace, project),
        )
    except (Refused, ValueError) as problem:
        report(cluster, {"phase": "Error"}, (False, Reason.INVALID_CONFIGURATION, str(problem)))
        return
    except Waiting as wait:
        report(cluster, {"phase": "Pending"}, (False, Reason.PROGRESSING, str(wait)))
        return
    try:
        wanted = _apply(cluster, project, spec, plan)
    except ApiException as error:
        if error.status != 422:
            raise
        # The Cluster API schemas refused what was built: say so rather than retry.
        message = f"Cluster API refused an object: {_reason(error)}"
        report(cluster, {"phase": "Error"}, (False, Reason.UNRECOVERABLE_ERROR, message))
        return
    _prune(namespace, name, wanted)
    _report(cluster, spec)


def _reason(error: ApiException) -> str:
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(error.reason)


def _apply(cluster, project: str, spec: ClusterSpec, plan: builders.Plan) -> set[tuple]:
    """Apply every object; return (apiVersion, kind, name) of each."""
    namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    control_template = builders.machine_template(
        cluster, project, builders.CONTROL_PLANE, spec.control_plane.flavor, plan
    )
    objects = [
        builders.capi_cluster(cluster, project),
        builders.kubevirt_cluster(cluster, project),
        control_template,
        builders.control_plane(cluster, project, spec, control_template),
    ]
    current_kcp = kube.read(*KCP, builders.control_plane_name(name), namespace)
    upgraded = ((current_kcp or {}).get("status") or {}).get("version") == spec.kubernetes_version
    for group in spec.node_groups:
        template = builders.machine_template(cluster, project, group.name, group.flavor, plan)
        current = kube.read(*MD, builders.group_name(name, group.name), namespace)
        # Workers follow the control plane: an upgrade reaches them once it runs the new
        # version (Cluster API's own order for an upgrade).
        version = spec.kubernetes_version
        if current is not None and not upgraded:
            version = current["spec"]["template"]["spec"].get("version") or version
        autoscaled = group.min_replicas is not None and current is not None
        objects += [
            template,
            builders.config_template(cluster, project, spec, group.name),
            builders.machine_deployment(
                cluster, project, group, version, template, replicas=not autoscaled
            ),
        ]
    for body in objects:
        kube.apply(body, MANAGER)
    return {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects}


def _prune(namespace: str, name: str, wanted: set[tuple]) -> None:
    """Delete node groups and machine templates the spec no longer asks for."""
    selector = f"{children.owned_by_selector(CLUSTER.kind)},{children.OWNER_NAME}={name}"
    for api_version, kind in OWNED_KINDS:
        found = kube.resource(api_version, kind).get(namespace=namespace, label_selector=selector)
        for item in found.items:
            if (api_version, kind, item.metadata.name) not in wanted:
                kube.delete(api_version, kind, item.metadata.name, namespace)


def _report(cluster: dict[str, Any], spec: ClusterSpec) -> None:
    namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    capi = kube.read(*CAPI_CLUSTER, name, namespace) or {}
    kcp = kube.read(*KCP, builders.control_plane_name(name), namespace) or {}
    deployments = [
        kube.read(*MD, builders.group_name(name, g.name), namespace) or {} for g in spec.node_groups
    ]
    status = capi.get("status") or {}
    endpoint = (capi.get("spec") or {}).get("controlPlaneEndpoint") or {}
    # Cluster API writes the kubeconfig Secret as the control plane initializes; reading
    # its status spares this service any access to Secrets.
    initialized = (status.get("initialization") or {}).get("controlPlaneInitialized")
    control_ready = (status.get("controlPlane") or {}).get("readyReplicas") or 0
    workers_ready = (status.get("workers") or {}).get("readyReplicas") or 0
    running = (kcp.get("status") or {}).get("version")
    phase, ready = _phase(spec, status, running, deployments, control_ready, workers_ready)
    fields = {
        "phase": phase,
        "apiEndpoint": f"https://{endpoint['host']}:{endpoint.get('port', 6443)}"
        if endpoint.get("host")
        else None,
        "kubeconfigSecret": builders.kubeconfig_secret(name) if initialized else None,
        "controlPlaneReady": control_ready,
        "workersReady": workers_ready,
        "kubernetesVersion": running,
    }
    report(cluster, fields, ready)


def _phase(spec: ClusterSpec, status, running, deployments, control_ready: int, workers: int):
    capi_phase = status.get("phase")
    available = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Available"), {}
    )
    detail = available.get("message") or f"Cluster API phase {capi_phase or 'none yet'}"
    if capi_phase == "Failed":
        return "Error", (False, Reason.UNRECOVERABLE_ERROR, f"Cluster API: {detail}")
    behind = [
        d["metadata"]["name"]
        for d in deployments
        if d
        and any(
            v.get("version") != spec.kubernetes_version
            for v in (d.get("status") or {}).get("versions") or [{}]
        )
    ]
    if running and (running != spec.kubernetes_version or behind):
        where = "control plane" if running != spec.kubernetes_version else ", ".join(behind)
        message = f"upgrading to {spec.kubernetes_version}: {where} still on an older version"
        return "Upgrading", (False, Reason.PROGRESSING, message)
    desired_workers = sum(g.replicas for g in spec.node_groups)
    if (
        capi_phase == "Provisioned"
        and control_ready >= spec.control_plane.replicas
        and workers >= desired_workers
    ):
        message = f"{control_ready} control-plane and {workers} worker nodes ready"
        return "Ready", (True, Reason.SUCCEEDED, message)
    return "Provisioning", (False, Reason.PROGRESSING, f"provisioning: {detail}")


# --- following Cluster API -------------------------------------------------------------------


def _reconcile_by_name(namespace: str, name: str, indexes: dict[str, Any]) -> None:
    kube.reconcile_named(CLUSTER.api_version, CLUSTER.kind, namespace, name, reconcile, indexes)


@kopf.on.event(builders.CAPI, "v1beta2", "clusters", labels=OWNED)
@kopf.on.event(builders.CAPI, "v1beta2", "machinedeployments", labels=OWNED)
@kopf.on.event(builders.CONTROL_PLANE_GROUP, "v1beta2", "kubeadmcontrolplanes", labels=OWNED)
def capi_changed(namespace: str, labels: kopf.Labels, **indexes: Any) -> None:
    _reconcile_by_name(namespace, labels[children.OWNER_NAME], indexes)


@kopf.on.event(IMAGE.group, VERSION, IMAGE.plural)
def image_changed(namespace: str, name: str, **indexes: Any) -> None:
    """An Image became active: Clusters waiting on it move on."""
    project = tenancy.project_of(namespace, indexes) or namespace
    for key in ((project, name), (None, name)):
        for cluster_ns, cluster in tenancy.all_of(indexes["clusters_by_image"], key):
            if key[0] is None and cluster_ns != namespace:
                continue
            _reconcile_by_name(cluster_ns, cluster, indexes)


# --- deletion --------------------------------------------------------------------------------


@kopf.on.delete(*CLUSTERS, backoff=5)
def delete_cluster(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Cluster API tears the nodes down when its Cluster is deleted; until it is gone the
    Cluster waits (phase Deleting), and only then do the remaining objects go with it."""
    capi = kube.read(*CAPI_CLUSTER, name, namespace)
    if capi is None:
        return
    if not capi["metadata"].get("deletionTimestamp"):
        kube.delete(*CAPI_CLUSTER, name, namespace)
    message = f"waiting for Cluster API to delete cluster {name} and its nodes"
    report(kube.plain(body), {"phase": "Deleting"}, (False, Reason.PROGRESSING, message))
    raise kopf.TemporaryError(message, delay=5)
