"""Keystone as a kopf controller: Projects become namespaces, role bindings, quotas and
isolation; a validating webhook refuses what would exceed a Project's quotas.

Handlers are thin: the objects come from `builders`, the counting from `quota`; here is
only what to watch, when to act, and what to tell the user.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import kopf

from operators.common import children, handlers, kube, tenancy
from operators.common.conditions import is_subset, set_condition
from operators.common.kinds import VERSION
from operators.common.schema import quantity_value
from operators.common.status import Reason
from operators.common.webhook import Check
from operators.identity import builders, quota
from operators.identity.api import PROJECT, ProjectSpec

log = logging.getLogger(__name__)
MANAGER = "ostack-identity"
PROJECTS = tenancy.PROJECTS
INSTANCETYPES = ("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterinstancetypes")

# The namespaced kinds a Project's quotas count, and the index holding each per namespace.
COUNTED = {
    "instances": "compute.ostack.dev",
    "volumes": "blockstorage.ostack.dev",
    "snapshots": "blockstorage.ostack.dev",
    "buckets": "objectstorage.ostack.dev",
    "networks": "network.ostack.dev",
    "images": "image.ostack.dev",
    "clusters": "containerinfra.ostack.dev",
}
SINGULAR = {
    "instances": "instance",
    "volumes": "volume",
    "snapshots": "snapshot",
    "buckets": "bucket",
    "networks": "network",
    "images": "image",
    "clusters": "cluster",
}

# The children a Project's drift repair watches, by (group, version, plural).
CHILDREN = (
    ("", "v1", "namespaces"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ("", "v1", "resourcequotas"),
    ("", "v1", "limitranges"),
    ("networking.k8s.io", "v1", "networkpolicies"),
)

CHECKS = [
    Check(f"quota-{plural}", group, plural, ("CREATE", "UPDATE"))
    if plural in ("instances", "volumes", "clusters")
    else Check(f"quota-{plural}", group, plural, ("CREATE",))
    for plural, group in COUNTED.items()
]
"""The admission checks this service serves (registered by operators.common.runtime)."""


# --- indexes: what every handler may read without asking the API --------------------------


@kopf.index(*PROJECTS)
def project_quotas(body: kopf.Body, name: str, **_: Any) -> dict[str, Any]:
    try:
        return {name: PROJECT.parse_spec(kube.plain(body)).quotas}
    except ValueError:
        return {}  # reconcile reports it; nothing to enforce meanwhile


@kopf.index(*INSTANCETYPES)
def flavors(name: str, spec: kopf.Spec, **_: Any) -> dict[str, quota.Flavor]:
    try:
        cpu, memory = spec["cpu"]["guest"], spec["memory"]["guest"]
    except (KeyError, TypeError):
        return {}  # a preference-only or malformed instancetype sizes nothing
    return {name: quota.Flavor(cpu=int(cpu), memory=quantity_value(memory))}


def _register_count_index(plural: str, group: str) -> None:
    def index(namespace: str, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any):
        return {namespace: (name, _footprint(plural, spec, status))}

    index.__name__ = f"{plural}_by_namespace"
    kopf.index(group, VERSION, plural, id=index.__name__)(index)


def _footprint(plural: str, spec: kopf.Spec, status: kopf.Status) -> Any:
    """What one object counts for in its kind's quotas."""
    if plural == "instances":
        return quota.InstanceFootprint.of(dict(spec))
    if plural == "clusters":
        return tuple(quota.cluster_nodes(dict(spec)))
    if plural == "volumes":
        return quantity_value(spec["size"])
    if plural == "snapshots":
        size = status.get("size")
        return (spec["volume"]["name"], quantity_value(size) if size else None)
    return None


for _plural, _group in COUNTED.items():
    _register_count_index(_plural, _group)


def _held(indexes: dict[str, Any], plural: str, namespace: str) -> list[tuple[str, Any]]:
    store = indexes[f"{plural}_by_namespace"].get(namespace)
    return list(store) if store is not None else []


def holdings(namespace: str, indexes: dict[str, Any]) -> quota.Holdings:
    volumes = dict(_held(indexes, "volumes", namespace))
    return quota.Holdings(
        instances=[footprint for _, footprint in _held(indexes, "instances", namespace)]
        + [node for _, nodes in _held(indexes, "clusters", namespace) for node in nodes],
        volume_sizes=list(volumes.values()),
        # A Snapshot is as large as its Volume until the snapshotter reports its size.
        snapshot_sizes=[
            size if size is not None else volumes.get(volume, Decimal(0))
            for _, (volume, size) in _held(indexes, "snapshots", namespace)
        ],
        buckets=len(_held(indexes, "buckets", namespace)),
        networks=len(_held(indexes, "networks", namespace)),
        images=len(_held(indexes, "images", namespace)),
    )


def _flavors(indexes: dict[str, Any]) -> dict[str, quota.Flavor]:
    return {name: next(iter(store)) for name, store in indexes["flavors"].items()}


# --- reconciling a Project ---------------------------------------------------------------


@handlers.reconciler(PROJECT)
def reconcile_project(body: kopf.Body, **indexes: Any) -> None:
    reconcile(kube.plain(body), indexes)


def reconcile(project: dict[str, Any], indexes: dict[str, Any]) -> None:
    try:
        spec = PROJECT.parse_spec(project)
    except ValueError as error:
        _refuse(project, f"the spec is invalid: {error}")
        return
    namespace = builders.namespace_name(project, spec)
    current = kube.read("v1", "Namespace", namespace)
    if current is not None and not _owns(project, current):
        holder = current["metadata"].get("labels", {}).get(children.PROJECT)
        whose = f"belongs to Project {holder}" if holder else "is not an ostack namespace"
        _refuse(
            project,
            f"namespace {namespace} already exists and {whose}; ostack never adopts a"
            " namespace: set spec.namespace to an unused name",
        )
        return
    created = kube.apply(builders.namespace(project, spec), MANAGER, current)
    waiting = sync_children(project, spec)
    if created and current is None:
        kopf.event(project, type="Normal", reason="Created", message=f"namespace {namespace}")
    if waiting:
        ready = (False, Reason.PROGRESSING, f"waiting for {', '.join(waiting)}")
    else:
        ready = (True, Reason.SUCCEEDED, f"namespace {namespace} is ready for the Project")
    log.info("reconciled Project %s: %s", project["metadata"]["name"], ready[2])
    _write_status(
        project,
        spec,
        phase="Pending" if waiting else "Ready",
        ready=ready,
        usage=quota.usage_status(
            quota.usage(holdings(namespace, indexes), _flavors(indexes)), quota.limits(spec.quotas)
        ),
    )


def _owns(project: dict[str, Any], namespace: dict[str, Any]) -> bool:
    uid = project["metadata"]["uid"]
    return any(ref.get("uid") == uid for ref in namespace["metadata"].get("ownerReferences", []))


def sync_children(project: dict[str, Any], spec: ProjectSpec) -> list[str]:
    """Apply what should exist, delete what should not; silent when all is in place.

    Returns what is in place but not yet in force.
    """
    namespace = builders.namespace_name(project, spec)
    waiting = []
    for api_version, kind, name, desired in builders.desired_children(project, spec):
        current = kube.read(api_version, kind, name, namespace)
        if desired is not None:
            kube.apply(desired, MANAGER, current)
            if kind == "ResourceQuota" and not _quota_counted(desired, current):
                # Until kube-controller-manager has counted it, the apiserver refuses every
                # create the quota covers ("status unknown for quota").
                waiting.append("the ResourceQuota to be counted")
        elif current is not None:
            kube.delete(api_version, kind, name, namespace)
    return waiting


def _quota_counted(desired: dict[str, Any], current: dict[str, Any] | None) -> bool:
    hard = (current or {}).get("status", {}).get("hard") or {}
    return set(hard) == set(desired["spec"]["hard"]) and all(
        quantity_value(hard[k]) == quantity_value(v) for k, v in desired["spec"]["hard"].items()
    )


def _refuse(project: dict[str, Any], message: str) -> None:
    kopf.event(project, type="Warning", reason="InvalidConfiguration", message=message)
    _write_status(
        project, None, phase="Error", ready=(False, Reason.INVALID_CONFIGURATION, message)
    )


def _write_status(
    project: dict[str, Any],
    spec: ProjectSpec | None,
    phase: str,
    ready: tuple[bool, Reason, str],
    usage: dict[str, Any] | None = None,
    remaining: list[str] | None = None,
) -> None:
    current = project.get("status") or {}
    generation = project["metadata"].get("generation")
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "conditions": set_condition(
            current.get("conditions", []), "Ready", *ready, generation=generation
        ),
        "remainingResources": remaining,
    }
    if spec is not None:
        status["namespace"] = builders.namespace_name(project, spec)
    if usage is not None:
        status["quotaUsage"] = usage
    if not is_subset(status, current):
        kube.patch_status(
            PROJECT.api_version, PROJECT.kind, project["metadata"]["name"], None, status
        )


# --- keeping status and children right as other objects change ----------------------------


def _refresh_usage(namespace: str, **indexes: Any) -> None:
    name = tenancy.project_of(namespace, indexes)
    project = kube.read(PROJECT.api_version, PROJECT.kind, name) if name else None
    if project is None or project["metadata"].get("deletionTimestamp"):
        return
    spec = PROJECT.parse_spec(project)
    in_use = quota.usage(holdings(namespace, indexes), _flavors(indexes))
    usage = quota.usage_status(in_use, quota.limits(spec.quotas))
    if not is_subset({"quotaUsage": usage}, project.get("status") or {}):
        kube.patch_status(PROJECT.api_version, PROJECT.kind, name, None, {"quotaUsage": usage})


for _plural, _group in COUNTED.items():
    kopf.on.event(_group, VERSION, _plural, id=f"usage-{_plural}")(_refresh_usage)


def _repair(labels: kopf.Labels, **indexes: Any) -> None:
    """A child changed or vanished: put back what the Project says (drift repair), and
    let the Project's status follow (a ResourceQuota that has just been counted)."""
    project = kube.read(PROJECT.api_version, PROJECT.kind, labels[children.OWNER_NAME])
    if project is not None and not project["metadata"].get("deletionTimestamp"):
        reconcile(project, indexes)


for _group, _version, _plural in CHILDREN:
    kopf.on.event(
        _group,
        _version,
        _plural,
        id=f"repair-{_plural}",
        labels={children.MANAGED_BY: children.MANAGER, children.OWNER_KIND: PROJECT.kind},
    )(_repair)


# --- deletion -------------------------------------------------------------------------------


@kopf.on.delete(*PROJECTS, backoff=15)
def release_project(body: kopf.Body, **indexes: Any) -> None:
    """Hold a `Restrict` Project while its namespace holds resources; the namespace and
    everything left in it then go with the Project (the garbage collector follows the
    namespace's ownerReference)."""
    project = kube.plain(body)
    try:
        spec = PROJECT.parse_spec(project)
    except ValueError:
        return
    if spec.deletion_policy == "Cascade":
        return
    namespace = builders.namespace_name(project, spec)
    left = remaining(namespace, indexes)
    if left:
        message = (
            f"Project still holds {', '.join(left)}; delete them first, or set"
            " spec.deletionPolicy: Cascade to delete them with the Project"
        )
        _write_status(
            project,
            spec,
            phase="Deleting",
            ready=(False, Reason.PROGRESSING, message),
            remaining=left,
        )
        raise kopf.TemporaryError(message, delay=15)


def remaining(namespace: str, indexes: dict[str, Any]) -> list[str]:
    counts = {plural: len(_held(indexes, plural, namespace)) for plural in COUNTED}
    return [f"{n} {plural if n > 1 else SINGULAR[plural]}" for plural, n in counts.items() if n]


# --- admission: quotas ----------------------------------------------------------------------


def requested(
    plural: str, new: dict[str, Any], old: dict[str, Any] | None, flavors: dict[str, quota.Flavor]
) -> dict[str, Decimal]:
    """What creating (or changing) one object adds to its Project's usage."""
    if plural == "instances":
        cpu, ram = quota.InstanceFootprint.of(new).size(flavors)
        before = quota.InstanceFootprint.of(old).size(flavors) if old else (0, Decimal(0))
        return {
            "instances": Decimal(0 if old else 1),
            "cores": Decimal(cpu - before[0]),
            "ram": ram - before[1],
        }
    if plural == "clusters":
        nodes, before = quota.cluster_nodes(new), quota.cluster_nodes(old) if old else []
        sizes = [n.size(flavors) for n in nodes]
        old_sizes = [n.size(flavors) for n in before]
        return {
            "instances": Decimal(len(nodes) - len(before)),
            "cores": Decimal(sum(c for c, _ in sizes) - sum(c for c, _ in old_sizes)),
            "ram": sum((r for _, r in sizes), Decimal(0))
            - sum((r for _, r in old_sizes), Decimal(0)),
        }
    if plural == "volumes":
        grown = quantity_value(new["size"]) - (quantity_value(old["size"]) if old else 0)
        return {"volumes": Decimal(0 if old else 1), "gigabytes": grown}
    return {plural: Decimal(1)}


def _snapshot_request(namespace: str, spec: dict[str, Any], indexes: dict[str, Any]):
    volumes = dict(_held(indexes, "volumes", namespace))
    return {
        "snapshots": Decimal(1),
        "gigabytes": volumes.get(spec.get("volume", {}).get("name"), Decimal(0)),
    }


def _register_quota_check(check: Check) -> None:
    plural = check.plural

    def check_quota(namespace: str, spec: kopf.Spec, old: kopf.Body | None, **indexes: Any) -> None:
        project = tenancy.project_of(namespace, indexes)
        quotas = tenancy.first(indexes["project_quotas"], project) if project else None
        if quotas is None:
            return
        if plural == "snapshots":
            wanted = _snapshot_request(namespace, dict(spec), indexes)
        else:
            old_spec = dict(old["spec"]) if old and old.get("spec") else None
            wanted = requested(plural, dict(spec), old_spec, _flavors(indexes))
        in_use = quota.usage(holdings(namespace, indexes), _flavors(indexes))
        refusal = quota.exceeded(wanted, in_use, quota.limits(quotas))
        if refusal:
            raise kopf.AdmissionError(f"{refusal} (Project {project})", code=403)

    check_quota.__name__ = check.handler_id.replace("-", "_")
    kopf.on.validate(
        check.group, VERSION, plural, id=check.handler_id, operations=list(check.operations)
    )(check_quota)


def register_admission() -> None:
    """Register the quota checks with kopf; only when a webhook server will serve them
    (kopf refuses to run admission handlers without one)."""
    for check in CHECKS:
        _register_quota_check(check)
