"""Glance as a kopf controller: Images become CDI DataVolumes (and PVCs), a DataSource,
a KubeVirt preference and, for shared images, the clone grant CDI checks.

Status follows the DataVolume through watches; handlers stay thin, the objects come from
`builders` and the reading of CDI's state from `lifecycle`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from operators.blockstorage.api import VOLUME
from operators.common import children, handlers, kube, metrics, tenancy
from operators.common.conditions import is_subset, set_condition
from operators.common.kinds import VERSION
from operators.common.status import Reason
from operators.image import builders, lifecycle
from operators.image.api import IMAGE, ImageSpec

log = logging.getLogger(__name__)
MANAGER = "ostack-image"
IMAGES = (IMAGE.group, VERSION, IMAGE.plural)
IMAGE_METER = metrics.Usage(
    "ostack_project_images", "Images per Project and Glance status.", ("project", "status")
)
DATAVOLUMES = ("cdi.kubevirt.io", "v1beta1", "datavolumes")
DEFAULT_SIZE = os.environ.get("OSTACK_IMAGE_DEFAULT_SIZE", "10Gi")
"""What an import asks for when the Image states no minDisk (CDI needs a size upfront)."""


# --- indexes ---------------------------------------------------------------------------------


@kopf.index(*DATAVOLUMES)
def clones_by_source(
    namespace: str, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[tuple[str, str], tuple[str, str, str]]:
    """DataVolumes cloning a PVC or a DataSource, by (namespace, name) of what they clone."""
    pvc = (spec.get("source") or {}).get("pvc")
    ref = spec.get("sourceRef")
    if pvc:
        key = (pvc.get("namespace") or namespace, pvc["name"])
    elif ref and ref.get("kind") == "DataSource":
        key = (ref.get("namespace") or namespace, ref["name"])
    else:
        return {}
    return {key: (namespace, name, status.get("phase", "Pending"))}


@kopf.index(*IMAGES)
def images_by_volume(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    volume = (spec.get("source") or {}).get("volume")
    return {(namespace, volume["name"]): name} if volume else {}


@kopf.index(*IMAGES)
def images_shared_with(namespace: str, name: str, spec: kopf.Spec, **_: Any):
    return {project: (namespace, name) for project in spec.get("sharedWith") or []}


# --- reconciling an Image --------------------------------------------------------------------


@handlers.reconciler(IMAGE)
def reconcile_image(body: kopf.Body, **indexes: Any) -> None:
    reconcile(kube.plain(body), indexes)


def reconcile(image: dict[str, Any], indexes: dict[str, Any]) -> None:
    namespace, name = image["metadata"]["namespace"], image["metadata"]["name"]
    try:
        spec = IMAGE.parse_spec(image)
    except ValueError as error:
        _report(image, lifecycle.Observed("killed", _invalid(f"the spec is invalid: {error}")))
        return
    project = tenancy.project_of(namespace, indexes) or namespace
    volume_pvc = None
    if spec.source.volume is not None:
        volume_pvc, waiting = _volume_pvc(namespace, spec.source.volume.name)
        if volume_pvc is None:
            assert waiting is not None
            _report(image, lifecycle.Observed("queued", waiting))
            return

    dv = _sync_data_volume(image, project, spec, volume_pvc)
    kube.apply(builders.data_source(image, project), MANAGER)
    _sync_optional(
        "instancetype.kubevirt.io/v1beta1",
        "VirtualMachinePreference",
        builders.object_name(image),
        namespace,
        builders.preference(image, project, spec),
    )
    grant = builders.clone_grant(image, project, spec, tenancy.namespaces_of(indexes))
    for kind, body in zip(("Role", "RoleBinding"), grant or (None, None), strict=True):
        _sync_optional(
            "rbac.authorization.k8s.io/v1",
            kind,
            f"ostack-clone-{builders.object_name(image)}",
            namespace,
            body,
        )
    observed = lifecycle.observe(dv, upload=spec.source.upload is not None)
    _report(image, observed, spec, dv)
    IMAGE_METER.observe(namespace, name, (project, observed.phase), 1)
    log.info("reconciled Image %s/%s: %s", namespace, name, observed.phase)


@kopf.on.event(*IMAGES)
def image_gone(type: str, namespace: str, name: str, **_: Any) -> None:
    if type == "DELETED":
        IMAGE_METER.forget(namespace, name)


def _volume_pvc(namespace: str, volume: str) -> tuple[str | None, tuple[bool, Reason, str] | None]:
    """The PVC of the Volume an image is made from, or why there is none yet."""
    body = kube.read(VOLUME.api_version, VOLUME.kind, volume, namespace)
    if body is None:
        return None, _invalid(f"Volume {volume} does not exist in this Project")
    pvc = (body.get("status") or {}).get("pvc")
    if not pvc:
        return None, (False, Reason.PROGRESSING, f"waiting for Volume {volume} to be available")
    return pvc, None


def _sync_data_volume(
    image: dict[str, Any], project: str, spec: ImageSpec, volume_pvc: str | None
) -> dict[str, Any] | None:
    desired = builders.data_volume(image, project, spec, DEFAULT_SIZE, volume_pvc)
    meta = desired["metadata"]
    current = kube.read(desired["apiVersion"], "DataVolume", meta["name"], meta["namespace"])
    if current is not None and current["spec"].get("source") != desired["spec"]["source"]:
        # A DataVolume's spec is immutable: a new source (a fixed URL) means a new import.
        kube.delete(desired["apiVersion"], "DataVolume", meta["name"], meta["namespace"])
        kopf.event(image, type="Normal", reason="Reimporting", message="the source changed")
        return None
    if current is None:
        kube.apply(desired, MANAGER)
    return current


def _sync_optional(
    api_version: str, kind: str, name: str, namespace: str, desired: dict[str, Any] | None
) -> None:
    current = kube.read(api_version, kind, name, namespace)
    if desired is not None:
        kube.apply(desired, MANAGER, current)
    elif current is not None:
        kube.delete(api_version, kind, name, namespace)


def _invalid(message: str) -> tuple[bool, Reason, str]:
    return False, Reason.INVALID_CONFIGURATION, message


def _report(
    image: dict[str, Any],
    observed: lifecycle.Observed,
    spec: ImageSpec | None = None,
    dv: dict[str, Any] | None = None,
) -> None:
    current = image.get("status") or {}
    generation = image["metadata"].get("generation")
    name = builders.object_name(image)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": observed.phase,
        "progress": observed.progress,
        "conditions": set_condition(
            current.get("conditions", []), "Ready", *observed.ready, generation=generation
        ),
    }
    if spec is not None:
        status |= {"dataVolume": name, "pvc": name, "dataSource": name}
        status["preference"] = name if builders.preference_spec(spec) else None
        upload = spec.source.upload is not None and observed.phase == "queued"
        status["uploadCommand"] = builders.upload_command(image) if upload else None
    if observed.phase == "active" and dv is not None:
        capacity = _capacity(image["metadata"]["namespace"], name)
        if capacity:
            status["size"] = capacity
    if is_subset(status, current):
        return
    kube.patch_status(
        IMAGE.api_version,
        IMAGE.kind,
        image["metadata"]["name"],
        image["metadata"]["namespace"],
        status,
    )
    if observed.phase != current.get("phase"):
        failed = observed.phase == "killed"
        kopf.event(
            image,
            type="Warning" if failed else "Normal",
            reason={"active": "Active", "killed": "ImportFailed"}.get(
                observed.phase, "Progressing"
            ),
            message=observed.ready[2],
        )


def _capacity(namespace: str, pvc: str) -> str | None:
    claim = kube.read("v1", "PersistentVolumeClaim", pvc, namespace)
    return ((claim or {}).get("status") or {}).get("capacity", {}).get("storage")


# --- following what the Image depends on -----------------------------------------------------


def _reconcile_by_name(namespace: str, name: str, indexes: dict[str, Any]) -> None:
    kube.reconcile_named(IMAGE.api_version, IMAGE.kind, namespace, name, reconcile, indexes)


@kopf.on.event(
    *DATAVOLUMES,
    labels={children.MANAGED_BY: children.MANAGER, children.OWNER_KIND: IMAGE.kind},
)
def data_volume_changed(namespace: str, labels: kopf.Labels, **indexes: Any) -> None:
    _reconcile_by_name(namespace, labels[children.OWNER_NAME], indexes)


@kopf.on.event(VOLUME.group, VERSION, VOLUME.plural)
def volume_changed(namespace: str, name: str, **indexes: Any) -> None:
    image = tenancy.first(indexes["images_by_volume"], (namespace, name))
    if image is not None:
        _reconcile_by_name(namespace, image, indexes)


@kopf.on.event(*tenancy.PROJECTS)
def project_changed(name: str, **indexes: Any) -> None:
    """A Project appeared (or moved): images shared with it need their grant updated."""
    store = indexes["images_shared_with"].get(name)
    for namespace, image in list(store) if store is not None else []:
        _reconcile_by_name(namespace, image, indexes)


# --- deletion --------------------------------------------------------------------------------


@kopf.on.delete(*IMAGES, backoff=10)
def release_image(body: kopf.Body, **indexes: Any) -> None:
    """Refuse while a clone of the image is still copying: once done, a root disk or Volume
    is its own copy and the image may go."""
    image = kube.plain(body)
    namespace, name = image["metadata"]["namespace"], builders.object_name(image)
    clones = indexes["clones_by_source"].get((namespace, name)) or []
    copying = [f"{ns}/{dv}" for ns, dv, phase in list(clones) if phase != "Succeeded"]
    if copying:
        message = f"Image is still being copied by DataVolume(s) {', '.join(sorted(copying))}"
        kopf.event(image, type="Warning", reason="DeletionRefused", message=message)
        raise kopf.TemporaryError(message, delay=10)
