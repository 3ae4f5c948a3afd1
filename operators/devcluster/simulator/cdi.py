"""CDI's runtime, simulated: DataVolumes get their claim and "import" into it.

Stands in for cdi-controller and its importer, cloner and upload-server pods: creates the
PVC, waits for it to be bound, then walks the DataVolume through CDI's phases with progress,
one step per reconcile, or fails it as the failure-injection annotations ask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from operators.devcluster.simulator.common import (
    FAIL_IMPORT,
    UPLOADED,
    annotation,
    condition,
    conditions,
    first_annotation,
    now,
    status_patch,
)
from operators.devcluster.simulator.engine import Context, Source, log_transition
from operators.devcluster.simulator.kube import (
    DATA_SOURCE,
    DATA_VOLUME,
    NAMESPACE,
    PVC,
    Obj,
    controller_of,
    meta,
    owner_ref,
)
from operators.devcluster.simulator.workqueue import Key

log = logging.getLogger(__name__)

DEFAULT_SIZE = "1Gi"
IMPORT_SOURCES = ("http", "s3", "gcs", "registry", "imageio", "vddk", "blank")
_TIME_FIELDS = ("lastTransitionTime", "lastHeartbeatTime")


@dataclass(frozen=True)
class Flow:
    """The phase names of one kind of DataVolume population."""

    scheduled: str
    in_progress: str
    source: str  # the value of CDI's storage.import.source annotation


IMPORT = Flow("ImportScheduled", "ImportInProgress", "http")
CLONE = Flow("CloneScheduled", "CloneInProgress", "clone")
UPLOAD = Flow("UploadScheduled", "UploadReady", "upload")


def flow_of(spec: Obj) -> tuple[Flow, str]:
    """How the DataVolume is populated, and the import source's name."""
    source = spec.get("source") or {}
    if spec.get("sourceRef") or "pvc" in source or "snapshot" in source:
        return CLONE, "clone"
    if "upload" in source:
        return UPLOAD, "upload"
    name = next((s for s in IMPORT_SOURCES if s in source), "none")
    return IMPORT, name


def import_failure(dv: Obj, namespace: Obj | None) -> str | None:
    """The message the import fails with, if it is to fail."""
    injected = first_annotation(FAIL_IMPORT, dv, namespace)
    if injected is not None:
        return injected or "Unable to process data: simulated import failure"
    _, source = flow_of(dv.get("spec") or {})
    url = ((dv.get("spec") or {}).get("source") or {}).get(source, {}) or {}
    url = url.get("url", "") if isinstance(url, dict) else ""
    host = urlsplit(url).hostname or ""
    # RFC 2606: .invalid never resolves, so a real importer fails exactly like this.
    if host == "invalid" or host.endswith(".invalid"):
        if source == "http":
            return (
                f'Unable to connect to http data source: Get "{url}": '
                f"dial tcp: lookup {host}: no such host"
            )
        return f"Unable to connect to {source} data source: lookup {host}: no such host"
    return None


class DataVolumes:
    """The reconciler of cdi.kubevirt.io/v1beta1 DataVolumes (key kind "dv")."""

    kind = "dv"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sources(self) -> list[Source]:
        return [
            Source(DATA_VOLUME, lambda dv: [self._key(dv)]),
            Source(PVC, self._claim_keys),
        ]

    def _key(self, dv: Obj) -> Key:
        return Key(self.kind, meta(dv)["namespace"], meta(dv)["name"])

    def _claim_keys(self, pvc: Obj) -> list[Key]:
        owner = controller_of(pvc)
        if owner and owner.get("kind") == "DataVolume":
            return [Key(self.kind, meta(pvc)["namespace"], owner["name"])]
        return []

    def reconcile(self, key: Key) -> float | None:
        kube = self.ctx.kube
        dv = kube.get(DATA_VOLUME, key.name, key.namespace)
        if dv is None or meta(dv).get("deletionTimestamp"):
            self.ctx.timers.forget(key)
            return None
        status = dv.get("status") or {}
        phase = status.get("phase") or ""
        pvc = kube.get(PVC, key.name, key.namespace)
        if pvc is None:
            if phase == "":
                return self._write(key, dv, "Pending", pvc)
            if phase == "Succeeded":
                log.warning("%s: its PVC is gone; CDI would not recreate it", key)
                return None
            kube.create(PVC, self._claim_for(dv), key.namespace)
            log.info("%s: created its PVC", key)
            return None
        if (controller_of(pvc) or {}).get("uid") != meta(dv)["uid"]:
            log.warning("%s: PVC %s exists and is not the DataVolume's", key, key.name)
            return None
        return self._step(key, dv, pvc, phase)

    def _step(self, key: Key, dv: Obj, pvc: Obj, phase: str) -> float | None:
        flow, _ = flow_of(dv.get("spec") or {})
        bound = (pvc.get("status") or {}).get("phase") == "Bound"
        namespace = self.ctx.kube.get(NAMESPACE, key.namespace)
        failure = None if flow is UPLOAD else import_failure(dv, namespace)
        if phase in ("", "Pending"):
            return self._write(key, dv, flow.scheduled, pvc)
        if phase == "Succeeded":
            return self._write(key, dv, phase, pvc)  # keeps Bound in line with the claim
        if phase == "Failed":
            # The importer pod is retried: once the cause is gone, the import starts over.
            return self._write(key, dv, "Failed" if failure else flow.scheduled, pvc, failure)
        if not bound:
            return self._write(key, dv, phase, pvc)
        if flow is UPLOAD:
            uploaded = annotation(dv, UPLOADED) == "true"
            return self._write(key, dv, "Succeeded" if uploaded else flow.in_progress, pvc)
        remaining = self.ctx.timers.remaining(key, "step", self.ctx.delays.import_step)
        if remaining > 0:
            return remaining
        self.ctx.timers.clear(key, "step")
        if failure:
            return self._write(key, dv, "Failed", pvc, failure)
        if phase == flow.scheduled:
            return self._write(key, dv, flow.in_progress, pvc, progress=0)
        steps = max(1, self.ctx.delays.import_steps)
        step = _step_of(dv, steps) + 1
        if step >= steps:
            return self._write(key, dv, "Succeeded", pvc)
        return self._write(key, dv, phase, pvc, progress=step)

    def _write(
        self,
        key: Key,
        dv: Obj,
        phase: str,
        pvc: Obj | None,
        failure: str | None = None,
        progress: int | None = None,
    ) -> None:
        current = dv.get("status") or {}
        desired = self._status(dv, phase, pvc, failure, progress)
        patch = status_patch(current, desired)
        if patch:
            self.ctx.kube.patch_status(DATA_VOLUME, key.name, patch, key.namespace)
            if "phase" in patch or "progress" in patch:
                after = f"{phase} {desired.get('progress') or ''}".strip()
                log_transition(log, str(key), current.get("phase"), after)
        return None

    def _status(
        self, dv: Obj, phase: str, pvc: Obj | None, failure: str | None, progress: int | None
    ) -> Obj:
        current = dv.get("status") or {}
        name = meta(dv)["name"]
        bound = pvc is not None and (pvc.get("status") or {}).get("phase") == "Bound"
        running = _running(phase, failure)
        wanted = [
            condition(
                "Bound",
                bound,
                "Bound" if bound else "Pending",
                f"PVC {name} {'Bound' if bound else 'Pending'}",
            ),
            condition("Ready", phase == "Succeeded"),
            running,
        ]
        restarts = int(current.get("restartCount") or 0)
        if phase == "Failed" and current.get("phase") != "Failed":
            restarts += 1
        return {
            "phase": phase,
            "claimName": name,
            "progress": self._progress(current, phase, progress),
            "restartCount": restarts,
            "conditions": conditions(
                current.get("conditions"), wanted, now(), time_fields=_TIME_FIELDS
            ),
        }

    def _progress(self, current: Obj, phase: str, step: int | None) -> str:
        if phase == "Succeeded":
            return "100.0%"
        if step is not None:
            return f"{100 * step / max(1, self.ctx.delays.import_steps):.2f}%"
        if phase in (IMPORT.in_progress, CLONE.in_progress, "Failed"):
            return str(current.get("progress") or "0.00%")
        return "N/A"

    def _claim_for(self, dv: Obj) -> Obj:
        """The PVC CDI creates for the DataVolume."""
        spec = dv.get("spec") or {}
        wanted = spec.get("storage") or spec.get("pvc") or {}
        _, source = flow_of(spec)
        claim: Obj = {
            "accessModes": wanted.get("accessModes") or ["ReadWriteOnce"],
            "resources": {"requests": {"storage": self._size(dv, wanted)}},
        }
        for field in ("volumeMode", "storageClassName"):
            if wanted.get(field):
                claim[field] = wanted[field]
        annotations = {
            "cdi.kubevirt.io/storage.import.source": source,
            "cdi.kubevirt.io/storage.contentType": spec.get("contentType") or "kubevirt",
        }
        url = ((spec.get("source") or {}).get(source) or {}).get("url")
        if url:
            annotations["cdi.kubevirt.io/storage.import.endpoint"] = url
        return {
            "metadata": {
                "name": meta(dv)["name"],
                "namespace": meta(dv)["namespace"],
                "labels": {"app": "containerized-data-importer"},
                "annotations": annotations,
                "ownerReferences": [owner_ref(dv, DATA_VOLUME)],
            },
            "spec": claim,
        }

    def _size(self, dv: Obj, wanted: Obj) -> str:
        size = ((wanted.get("resources") or {}).get("requests") or {}).get("storage")
        if size:
            return str(size)
        source = self._clone_source(dv)
        if source is not None:
            pvc = self.ctx.kube.get(PVC, source[1], source[0]) or {}
            found = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
            if found:
                return str(found)
        log.warning(
            "DataVolume %s/%s: no size given; using %s",
            meta(dv)["namespace"],
            meta(dv)["name"],
            DEFAULT_SIZE,
        )
        return DEFAULT_SIZE

    def _clone_source(self, dv: Obj) -> tuple[str, str] | None:
        """(namespace, name) of the PVC a clone copies, through a DataSource if need be."""
        spec = dv.get("spec") or {}
        namespace = meta(dv)["namespace"]
        source = (spec.get("source") or {}).get("pvc")
        ref = spec.get("sourceRef") or {}
        if source is None and ref.get("kind") == "DataSource":
            data_source = self.ctx.kube.get(
                DATA_SOURCE, ref.get("name", ""), ref.get("namespace") or namespace
            )
            source = (((data_source or {}).get("spec") or {}).get("source") or {}).get("pvc")
        if not source or not source.get("name"):
            return None
        return source.get("namespace") or namespace, source["name"]


def _running(phase: str, failure: str | None) -> Obj:
    if failure:
        return condition("Running", False, "Error", failure)
    if phase == "Succeeded":
        return condition("Running", False, "Completed")
    if phase in (IMPORT.in_progress, CLONE.in_progress, UPLOAD.in_progress):
        return condition("Running", True, "Pod is running")
    return condition("Running", False)


def _step_of(dv: Obj, steps: int) -> int:
    """How many of `steps` import steps are done, from the progress the status shows."""
    text = str((dv.get("status") or {}).get("progress") or "0").rstrip("%")
    try:
        return round(float(text) * steps / 100)
    except ValueError:
        return 0
