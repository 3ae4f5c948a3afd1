"""Cinder as a kopf controller: Volumes become PVCs or CDI DataVolumes, Snapshots become
VolumeSnapshots; attachments are read from the Instances that name a Volume."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from operators.blockstorage import builders, types
from operators.blockstorage.api import SNAPSHOT, VOLUME, VolumeSpec
from operators.common import children, handlers, kube, metrics, tenancy
from operators.common.conditions import is_subset, set_condition
from operators.common.kinds import VERSION
from operators.common.schema import quantity_value
from operators.common.status import Reason
from operators.compute.api import INSTANCE
from operators.image import lifecycle as image_lifecycle
from operators.image.api import IMAGE
from operators.image.builders import object_name as image_object

log = logging.getLogger(__name__)
MANAGER = "ostack-blockstorage"
VOLUMES = (VOLUME.group, VERSION, VOLUME.plural)
SNAPSHOTS = (SNAPSHOT.group, VERSION, SNAPSHOT.plural)
INSTANCES = (INSTANCE.group, VERSION, INSTANCE.plural)
VOLUME_METER = metrics.Usage(
    "ostack_project_volume_bytes", "Size of a Project's Volumes, in bytes.", ("project",)
)


class Refused(Exception):
    """The spec cannot be met as written."""


class Waiting(Exception):
    """Something needed is not ready yet."""


# --- indexes ---------------------------------------------------------------------------------


@kopf.index(*INSTANCES)
def attached_to(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    """Instances using a Volume: attached, or booting from it."""
    refs = [*(spec.get("volumes") or []), *([spec["bootVolume"]] if spec.get("bootVolume") else [])]
    return {(namespace, ref["name"]): name for ref in refs}


@kopf.index(*VOLUMES)
def volumes_by_namespace(namespace: str, name: str, **_: Any):
    return {namespace: name}


@kopf.index(*VOLUMES)
def volumes_by_source(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    """Volumes waiting on something to be filled from, by (kind, namespace, name) of it."""
    source = spec.get("source") or {}
    if source.get("image"):
        image = source["image"]
        return {("image", image.get("project") or namespace, image["name"]): (namespace, name)}
    if source.get("snapshot"):
        return {("snapshot", namespace, source["snapshot"]["name"]): (namespace, name)}
    return {}


@kopf.index(*SNAPSHOTS)
def snapshots_of(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    return {(namespace, spec["volume"]["name"]): name}


def volume_types() -> types.Catalogue:
    config = kube.read("v1", "ConfigMap", types.CONFIG_MAP, types.NAMESPACE)
    text = ((config or {}).get("data") or {}).get("types.yaml")
    return types.parse(text) if text else types.BUILT_IN


# --- Volumes ---------------------------------------------------------------------------------


@handlers.reconciler(VOLUME)
def reconcile_volume(body: kopf.Body, **indexes: Any) -> None:
    reconcile(kube.plain(body), indexes)


def _source(volume: dict[str, Any], spec: VolumeSpec, project: str, indexes) -> dict | None:
    """The DataVolume source for a filled Volume; None for a blank one."""
    namespace = volume["metadata"]["namespace"]
    source = spec.source
    if source.image is not None:
        image_project = source.image.project or project
        image_ns = tenancy.first(indexes["namespace_by_project"], image_project) or image_project
        image = kube.read(IMAGE.api_version, IMAGE.kind, source.image.name, image_ns)
        if image is None:
            raise Refused(f"Image {source.image.name} does not exist in Project {image_project}")
        refusal = image_lifecycle.refusal(
            IMAGE.parse_spec(image), source.image.name, image_project, project
        )
        if refusal:
            raise Refused(refusal)
        if (image.get("status") or {}).get("phase") != "active":
            raise Waiting(f"waiting for Image {source.image.name} to be active")
        ref = {"kind": "DataSource", "namespace": image_ns, "name": image_object(image)}
        return {"sourceRef": ref}
    if source.volume is not None:
        if kube.read(VOLUME.api_version, VOLUME.kind, source.volume.name, namespace) is None:
            raise Refused(f"Volume {source.volume.name} does not exist")
        claim = builders.claim_name(source.volume.name)
        return {"source": {"pvc": {"namespace": namespace, "name": claim}}}
    if source.snapshot is not None:
        snap = kube.read(SNAPSHOT.api_version, SNAPSHOT.kind, source.snapshot.name, namespace)
        if snap is None:
            raise Refused(f"Snapshot {source.snapshot.name} does not exist")
        if (snap.get("status") or {}).get("phase") != "available":
            raise Waiting(f"waiting for Snapshot {source.snapshot.name} to be available")
        name = builders.snapshot_name(source.snapshot.name)
        return {"source": {"snapshot": {"namespace": namespace, "name": name}}}
    return None


def reconcile(volume: dict[str, Any], indexes: dict[str, Any]) -> None:
    namespace, name = volume["metadata"]["namespace"], volume["metadata"]["name"]
    try:
        spec = VOLUME.parse_spec(volume)
        kind = volume_types().resolve(spec.volume_type)
        project = tenancy.project_of(namespace, indexes) or namespace
        source = _source(volume, spec, project, indexes)
    except (Refused, ValueError) as problem:
        _report(volume, "error", (False, Reason.INVALID_CONFIGURATION, str(problem)))
        return
    except Waiting as wait:
        _report(volume, "creating", (False, Reason.PROGRESSING, str(wait)))
        return
    claim_name = builders.claim_name(name)
    claim = kube.read("v1", "PersistentVolumeClaim", claim_name, namespace)
    if source is None:
        desired = builders.claim(volume, project, spec, kind)
        if claim is None:
            kube.apply(desired, MANAGER)
    elif kube.read("cdi.kubevirt.io/v1beta1", "DataVolume", claim_name, namespace) is None:
        kube.apply(builders.data_volume(volume, project, spec, kind, source), MANAGER)
    phase, ready = _phase(volume, spec, kind, claim, namespace, indexes)
    if phase == "extending" and kind.extendable:
        _extend(claim_name, namespace, spec.size)
    _report(volume, phase, ready, claim, kind, _attachments(namespace, name, indexes))
    # Cinder's gigabytes: what the Volume asks for, whatever its phase.
    VOLUME_METER.observe(namespace, name, (project,), float(quantity_value(spec.size)))
    log.info("reconciled Volume %s/%s: %s", namespace, name, phase)


def _phase(volume, spec: VolumeSpec, kind, claim, namespace: str, indexes):
    name = volume["metadata"]["name"]
    dv = kube.read("cdi.kubevirt.io/v1beta1", "DataVolume", builders.claim_name(name), namespace)
    if dv is not None and (dv.get("status") or {}).get("phase") == "Failed":
        return "error", (False, Reason.TRANSIENT_ERROR, "CDI could not fill the Volume")
    status = (claim or {}).get("status") or {}
    filling = dv is not None and (dv.get("status") or {}).get("phase") != "Succeeded"
    if status.get("phase") != "Bound" or filling:
        return "creating", (False, Reason.PROGRESSING, "provisioning the PVC")
    capacity = status.get("capacity", {}).get("storage")
    if capacity and quantity_value(capacity) < quantity_value(spec.size):
        if not kind.extendable:
            message = f"volume type {kind.name} cannot be extended; size stays {capacity}"
            return "available", (False, Reason.INVALID_CONFIGURATION, message)
        return "extending", (False, Reason.PROGRESSING, f"extending from {capacity} to {spec.size}")
    attached = _attachments(namespace, name, indexes)
    phase = "in-use" if attached else "available"
    return phase, (True, Reason.SUCCEEDED, f"{phase}")


def _extend(claim_name: str, namespace: str, size: str) -> None:
    """Grow the PVC: the CSI driver's resizer (and the kubelet) do the rest. A merge patch
    of the one field, since CDI, not we, may own the rest of a filled Volume's PVC."""
    kube.send(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim_name, "namespace": namespace},
            "spec": {"resources": {"requests": {"storage": size}}},
        },
        "PATCH",
        [("fieldManager", MANAGER)],
        "application/merge-patch+json",
    )


def _attachments(namespace: str, name: str, indexes: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"instance": instance, "device": f"volume-{name}"}
        for instance in tenancy.all_of(indexes["attached_to"], (namespace, name))
    ]


def _report(volume, phase, ready, claim=None, kind=None, attachments=None) -> None:
    current = volume.get("status") or {}
    generation = volume["metadata"].get("generation")
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "attachments": attachments or None,
        "conditions": set_condition(
            current.get("conditions", []), "Ready", *ready, generation=generation
        ),
    }
    if claim is not None:
        status["pvc"] = claim["metadata"]["name"]
        capacity = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
        if capacity:
            status["capacity"] = capacity
    if kind is not None and kind.storage_class:
        status["storageClass"] = kind.storage_class
    if is_subset(status, current):
        return
    meta = volume["metadata"]
    kube.patch_status(VOLUME.api_version, VOLUME.kind, meta["name"], meta["namespace"], status)
    if phase != current.get("phase"):
        kopf.event(
            volume,
            type="Warning" if phase == "error" else "Normal",
            reason=phase.title().replace("-", ""),
            message=ready[2],
        )


@kopf.on.event(*VOLUMES)
def volume_gone(type: str, namespace: str, name: str, **_: Any) -> None:
    if type == "DELETED":
        VOLUME_METER.forget(namespace, name)


@kopf.on.delete(*VOLUMES, backoff=10)
def release_volume(body: kopf.Body, namespace: str, name: str, **indexes: Any) -> None:
    """Cinder's rules: an attached Volume, or one with Snapshots, is not deleted."""
    volume = kube.plain(body)
    instances = tenancy.all_of(indexes["attached_to"], (namespace, name))
    snapshots = tenancy.all_of(indexes["snapshots_of"], (namespace, name))
    if instances:
        message = f"Volume is attached to Instance(s) {', '.join(instances)}; detach it first"
    elif snapshots:
        message = f"Volume has Snapshot(s) {', '.join(snapshots)}; delete them first"
    else:
        return
    kopf.event(volume, type="Warning", reason="DeletionRefused", message=message)
    _report(volume, "in-use" if instances else "available", (False, Reason.PROGRESSING, message))
    raise kopf.TemporaryError(message, delay=10)


# --- Snapshots -------------------------------------------------------------------------------


@handlers.reconciler(SNAPSHOT, updates=False)
def reconcile_snapshot(body: kopf.Body, **indexes: Any) -> None:
    snapshot_reconcile(kube.plain(body), indexes)


def snapshot_reconcile(snapshot: dict[str, Any], indexes: dict[str, Any]) -> None:
    namespace, name = snapshot["metadata"]["namespace"], snapshot["metadata"]["name"]
    spec = SNAPSHOT.parse_spec(snapshot)
    volume = kube.read(VOLUME.api_version, VOLUME.kind, spec.volume.name, namespace)
    if volume is None:
        _report_snapshot(
            snapshot,
            "error",
            (False, Reason.INVALID_CONFIGURATION, f"Volume {spec.volume.name} does not exist"),
        )
        return
    try:
        kind = volume_types().resolve(VOLUME.parse_spec(volume).volume_type)
    except ValueError as problem:
        _report_snapshot(snapshot, "error", (False, Reason.INVALID_CONFIGURATION, str(problem)))
        return
    project = tenancy.project_of(namespace, indexes) or namespace
    snap_name = builders.snapshot_name(name)
    current = kube.read("snapshot.storage.k8s.io/v1", "VolumeSnapshot", snap_name, namespace)
    if current is None:
        kube.apply(builders.volume_snapshot(snapshot, project, spec.volume.name, kind), MANAGER)
    status = (current or {}).get("status") or {}
    if status.get("error"):
        message = status["error"].get("message", "the snapshotter reported an error")
        _report_snapshot(snapshot, "error", (False, Reason.TRANSIENT_ERROR, message))
    elif status.get("readyToUse"):
        _report_snapshot(
            snapshot, "available", (True, Reason.SUCCEEDED, "available"), status.get("restoreSize")
        )
    else:
        _report_snapshot(snapshot, "creating", (False, Reason.PROGRESSING, "snapshotting"))


def _report_snapshot(snapshot, phase, ready, size: str | None = None) -> None:
    current = snapshot.get("status") or {}
    generation = snapshot["metadata"].get("generation")
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "volumeSnapshot": builders.snapshot_name(snapshot["metadata"]["name"]),
        "conditions": set_condition(
            current.get("conditions", []), "Ready", *ready, generation=generation
        ),
    }
    if size:
        status["size"] = size
    if not is_subset(status, current):
        meta = snapshot["metadata"]
        kube.patch_status(
            SNAPSHOT.api_version, SNAPSHOT.kind, meta["name"], meta["namespace"], status
        )


# --- following what Volumes and Snapshots depend on ------------------------------------------


def _again(read_kind: Any, namespace: str, name: str, indexes: dict[str, Any], step) -> None:
    kube.reconcile_named(read_kind.api_version, read_kind.kind, namespace, name, step, indexes)


@kopf.on.event("", "v1", "persistentvolumeclaims", labels={children.OWNER_KIND: VOLUME.kind})
@kopf.on.event(
    "cdi.kubevirt.io", "v1beta1", "datavolumes", labels={children.OWNER_KIND: VOLUME.kind}
)
def storage_changed(namespace: str, labels: kopf.Labels, **indexes: Any) -> None:
    _again(VOLUME, namespace, labels[children.OWNER_NAME], indexes, reconcile)


@kopf.on.event(
    "snapshot.storage.k8s.io", "v1", "volumesnapshots", labels={children.OWNER_KIND: SNAPSHOT.kind}
)
def volume_snapshot_changed(namespace: str, labels: kopf.Labels, **indexes: Any) -> None:
    _again(SNAPSHOT, namespace, labels[children.OWNER_NAME], indexes, snapshot_reconcile)


@kopf.on.event(IMAGE.group, VERSION, IMAGE.plural)
def image_changed(namespace: str, name: str, **indexes: Any) -> None:
    """An Image became active: Volumes waiting to be filled from it move on."""
    project = tenancy.project_of(namespace, indexes) or namespace
    for key in {("image", project, name), ("image", namespace, name)}:
        for volume_ns, volume in tenancy.all_of(indexes["volumes_by_source"], key):
            _again(VOLUME, volume_ns, volume, indexes, reconcile)


@kopf.on.event(*SNAPSHOTS)
def snapshot_changed(namespace: str, name: str, **indexes: Any) -> None:
    """A Snapshot became available: Volumes restoring it move on."""
    for volume_ns, volume in tenancy.all_of(
        indexes["volumes_by_source"], ("snapshot", namespace, name)
    ):
        _again(VOLUME, volume_ns, volume, indexes, reconcile)


@kopf.on.event(*INSTANCES)
def instance_changed(namespace: str, **indexes: Any) -> None:
    """Attachments follow the Instances that name a Volume: an Instance's change (attach,
    detach, deletion) is looked at from every Volume of its namespace, which writes only
    where the attachments differ."""
    for name in tenancy.all_of(indexes["volumes_by_namespace"], namespace):
        _again(VOLUME, namespace, name, indexes, reconcile)
