"""A CSI driver's controller side, simulated: provisioning, expansion, reclaim and snapshots.

Plays external-provisioner, external-resizer (plus the kubelet's part of a resize) and the
snapshot controller with csi-snapshotter, for the driver `sim.csi.ostack.dev`. Binding is
left to kube-controller-manager's own PV controller, as in a real cluster: the simulator
creates a PV pre-bound to the claim (claimRef) and the PV controller completes the bind.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from operators.devcluster.simulator.common import (
    DRIVER,
    SNAPSHOT_CLASS_NAME,
    STORAGE_CLASS_NAME,
    format_bytes,
    now,
    quantity,
    status_patch,
)
from operators.devcluster.simulator.engine import Context, Source, log_transition
from operators.devcluster.simulator.kube import (
    PV,
    PVC,
    SNAPSHOT,
    SNAPSHOT_CLASS,
    SNAPSHOT_CONTENT,
    STORAGE_CLASS,
    Kube,
    Obj,
    meta,
)
from operators.devcluster.simulator.workqueue import Key

log = logging.getLogger(__name__)

PROVISIONER_ANNOTATIONS = (
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",  # set by older controller-managers
)
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
# How often to look again at a snapshot whose source claim is not bound yet.
SOURCE_POLL = 1.0
CLASS_RETRY = 2.0


def ensure_classes(kube: Kube) -> bool:
    """Create the default StorageClass and VolumeSnapshotClass unless they exist.

    False if one could not be created because its API is not served (yet).
    """
    storage_class = {
        "metadata": {
            "name": STORAGE_CLASS_NAME,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": DRIVER,
        "reclaimPolicy": "Delete",
        "allowVolumeExpansion": True,
        "volumeBindingMode": "Immediate",
    }
    snapshot_class = {
        "metadata": {
            "name": SNAPSHOT_CLASS_NAME,
            "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"},
        },
        "driver": DRIVER,
        "deletionPolicy": "Delete",
    }
    done = True
    for resource, body in ((STORAGE_CLASS, storage_class), (SNAPSHOT_CLASS, snapshot_class)):
        try:
            kube.create(resource, body)
            log.info("created %s %s", resource.kind, body["metadata"]["name"])
        except ApiException as error:
            if error.status == 409:
                continue  # someone's own is kept as it is
            if error.status != 404:
                raise
            done = False  # the snapshot CRDs are not installed (yet)
    return done


class Classes:
    """Keeps trying to create the default classes until their APIs are served ("classes")."""

    kind = "classes"
    key = Key(kind, "", "")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._waiting = False

    def reconcile(self, key: Key) -> float | None:
        if ensure_classes(self.ctx.kube):
            if self._waiting:
                log.info("default classes in place")
            return None
        if not self._waiting:
            log.warning("the VolumeSnapshotClass API is not served; retrying until it is")
            self._waiting = True
        return CLASS_RETRY


class Claims:
    """Provisions and expands claims of the simulated driver (key kind "pvc")."""

    kind = "pvc"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sources(self) -> list[Source]:
        return [Source(PVC, lambda pvc: [self.key(pvc)])]

    def key(self, pvc: Obj) -> Key:
        return Key(self.kind, meta(pvc)["namespace"], meta(pvc)["name"])

    def reconcile(self, key: Key) -> float | None:
        pvc = self.ctx.kube.get(PVC, key.name, key.namespace)
        if pvc is None or meta(pvc).get("deletionTimestamp"):
            self.ctx.timers.forget(key)
            return None
        if (pvc.get("status") or {}).get("phase") == "Bound":
            return self._expand(key, pvc)
        if (pvc.get("spec") or {}).get("volumeName") or not _ours(pvc):
            return None  # being bound by the PV controller, or another provisioner's
        if self.ctx.kube.get(PV, _pv_name(pvc)) is not None:
            return None  # provisioned: binding is kube-controller-manager's job
        remaining = self.ctx.timers.remaining(key, "bind", self.ctx.delays.bind)
        if remaining > 0:
            return remaining
        self.ctx.kube.create(PV, _volume_for(pvc))
        self.ctx.timers.clear(key, "bind")
        log.info("%s: provisioned PV %s", key, _pv_name(pvc))
        return None

    def _expand(self, key: Key, pvc: Obj) -> float | None:
        """Grow the volume, then report the new size on the claim, as resizer and kubelet do."""
        requested = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {})
        request = requested.get("storage")
        capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
        wanted, have = quantity(request), quantity(capacity)
        if wanted is None or have is None or wanted <= have:
            self.ctx.timers.clear(key, "resize")
            return None
        volume_name = pvc["spec"].get("volumeName", "")
        pv = self.ctx.kube.get(PV, volume_name)
        if pv is None or ((pv.get("spec") or {}).get("csi") or {}).get("driver") != DRIVER:
            return None
        remaining = self.ctx.timers.remaining(key, "resize", self.ctx.delays.resize)
        if remaining > 0:
            return remaining
        pv_size = quantity(((pv.get("spec") or {}).get("capacity") or {}).get("storage"))
        if pv_size is None or pv_size < wanted:
            self.ctx.kube.patch(PV, volume_name, {"spec": {"capacity": {"storage": request}}})
            log_transition(log, f"{key} PV {volume_name} capacity", pv_size, request)
            return 0.0  # straight on to the claim
        self.ctx.kube.patch_status(PVC, key.name, {"capacity": {"storage": request}}, key.namespace)
        self.ctx.timers.clear(key, "resize")
        log_transition(log, f"{key} capacity", capacity, request)
        return None


class Volumes:
    """Deletes released volumes of the simulated driver with policy Delete (key kind "pv")."""

    kind = "pv"

    def __init__(self, ctx: Context, claims: Claims) -> None:
        self.ctx = ctx
        self.claims = claims

    def sources(self) -> list[Source]:
        return [Source(PV, self._keys)]

    def _keys(self, pv: Obj) -> list[Key]:
        keys = [Key(self.kind, "", meta(pv)["name"])]
        claim = (pv.get("spec") or {}).get("claimRef") or {}
        if claim.get("name") and claim.get("namespace"):
            keys.append(Key(self.claims.kind, claim["namespace"], claim["name"]))
        return keys

    def reconcile(self, key: Key) -> float | None:
        pv = self.ctx.kube.get(PV, key.name)
        if pv is None or meta(pv).get("deletionTimestamp"):
            return None
        spec = pv.get("spec") or {}
        released = (pv.get("status") or {}).get("phase") == "Released"
        ours = (spec.get("csi") or {}).get("driver") == DRIVER
        if released and ours and spec.get("persistentVolumeReclaimPolicy") == "Delete":
            self.ctx.kube.delete(PV, key.name, uid=meta(pv)["uid"])
            log.info("%s: released, deleted", key)
        return None


class Snapshots:
    """Takes VolumeSnapshots of the simulated driver's claims (key kind "snapshot")."""

    kind = "snapshot"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sources(self) -> list[Source]:
        return [
            Source(SNAPSHOT, lambda vs: [Key(self.kind, meta(vs)["namespace"], meta(vs)["name"])]),
            Source(SNAPSHOT_CONTENT, self._content_keys),
        ]

    def _content_keys(self, content: Obj) -> list[Key]:
        keys = [Key("content", "", meta(content)["name"])]
        ref = (content.get("spec") or {}).get("volumeSnapshotRef") or {}
        if ref.get("name") and ref.get("namespace"):
            keys.append(Key(self.kind, ref["namespace"], ref["name"]))
        return keys

    def reconcile(self, key: Key) -> float | None:
        kube = self.ctx.kube
        snapshot = kube.get(SNAPSHOT, key.name, key.namespace)
        if snapshot is None or meta(snapshot).get("deletionTimestamp"):
            self.ctx.timers.forget(key)
            return None
        source = ((snapshot.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
        if not source:
            log.debug("%s: pre-provisioned snapshots are not simulated", key)
            return None
        content_name = f"snapcontent-{meta(snapshot)['uid']}"
        content = kube.get(SNAPSHOT_CONTENT, content_name)
        if content is None:
            return self._take(key, snapshot, source, content_name)
        content_status = content.get("status") or {}
        if not content_status.get("readyToUse"):
            self._finish_content(key, snapshot, content, source)
            return None
        desired = {
            "boundVolumeSnapshotContentName": content_name,
            "creationTime": _rfc3339(content_status.get("creationTime")),
            "readyToUse": True,
            "restoreSize": format_bytes(int(content_status.get("restoreSize") or 0)),
        }
        patch = status_patch(snapshot.get("status"), desired)
        if patch:
            kube.patch_status(SNAPSHOT, key.name, patch, key.namespace)
            log_transition(log, f"{key} readyToUse", None, True)
        return None

    def _take(self, key: Key, snapshot: Obj, source: str, content_name: str) -> float | None:
        kube = self.ctx.kube
        pvc = kube.get(PVC, source, key.namespace)
        if pvc is None or (pvc.get("status") or {}).get("phase") != "Bound":
            patch = status_patch(snapshot.get("status"), {"readyToUse": False})
            if patch:
                kube.patch_status(SNAPSHOT, key.name, patch, key.namespace)
            return SOURCE_POLL
        pv = kube.get(PV, pvc["spec"].get("volumeName", "")) or {}
        handle = ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle")
        if not handle:
            log.debug("%s: source %s is not a CSI volume", key, source)
            return SOURCE_POLL
        remaining = self.ctx.timers.remaining(key, "snapshot", self.ctx.delays.snapshot)
        if remaining > 0:
            return remaining
        kube.create(SNAPSHOT_CONTENT, _content_for(kube, snapshot, pvc, handle, content_name))
        self.ctx.timers.clear(key, "snapshot")
        log.info("%s: created %s", key, content_name)
        return None

    def _finish_content(self, key: Key, snapshot: Obj, content: Obj, source: str) -> None:
        pvc = self.ctx.kube.get(PVC, source, key.namespace) or {}
        size = quantity(((pvc.get("status") or {}).get("capacity") or {}).get("storage")) or 0
        status = {
            "readyToUse": True,
            "creationTime": int(datetime.now(UTC).timestamp()) * 10**9,
            "restoreSize": int(size),
            "snapshotHandle": f"snapshot-{meta(snapshot)['uid']}",
        }
        self.ctx.kube.patch_status(SNAPSHOT_CONTENT, meta(content)["name"], status)
        log_transition(log, f"{key} content {meta(content)['name']}", None, "readyToUse")


class SnapshotContents:
    """Deletes contents whose snapshot is gone, when their policy says Delete ("content")."""

    kind = "content"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, key: Key) -> float | None:
        kube = self.ctx.kube
        content = kube.get(SNAPSHOT_CONTENT, key.name)
        if content is None or meta(content).get("deletionTimestamp"):
            return None
        spec = content.get("spec") or {}
        ref = spec.get("volumeSnapshotRef") or {}
        if spec.get("driver") != DRIVER or spec.get("deletionPolicy") != "Delete":
            return None
        snapshot = kube.get(SNAPSHOT, ref.get("name", ""), ref.get("namespace", ""))
        if snapshot is None or meta(snapshot).get("uid") != ref.get("uid"):
            kube.delete(SNAPSHOT_CONTENT, key.name, uid=meta(content)["uid"])
            log.info("%s: its snapshot is gone, deleted", key)
        return None


def _ours(pvc: Obj) -> bool:
    annotations = meta(pvc).get("annotations") or {}
    return any(annotations.get(a) == DRIVER for a in PROVISIONER_ANNOTATIONS)


def _pv_name(pvc: Obj) -> str:
    return f"pvc-{meta(pvc)['uid']}"


def _volume_for(pvc: Obj) -> Obj:
    """The PV external-provisioner creates: pre-bound to the claim, for the PV controller."""
    spec = pvc.get("spec") or {}
    volume_mode = spec.get("volumeMode") or "Filesystem"
    csi: Obj = {"driver": DRIVER, "volumeHandle": meta(pvc)["uid"]}
    if volume_mode == "Filesystem":
        csi["fsType"] = "ext4"
    return {
        "metadata": {"name": _pv_name(pvc), "annotations": {PROVISIONED_BY: DRIVER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": volume_mode,
            "storageClassName": spec.get("storageClassName") or STORAGE_CLASS_NAME,
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta(pvc)["namespace"],
                "name": meta(pvc)["name"],
                "uid": meta(pvc)["uid"],
            },
            "csi": csi,
        },
    }


def _content_for(kube: Kube, snapshot: Obj, pvc: Obj, handle: str, name: str) -> Obj:
    """The VolumeSnapshotContent the snapshot controller creates for a dynamic snapshot."""
    class_name = (snapshot.get("spec") or {}).get("volumeSnapshotClassName") or (
        SNAPSHOT_CLASS_NAME
    )
    snapshot_class = kube.get(SNAPSHOT_CLASS, class_name) or {}
    return {
        "metadata": {"name": name},
        "spec": {
            "driver": DRIVER,
            "deletionPolicy": snapshot_class.get("deletionPolicy", "Delete"),
            "volumeSnapshotClassName": class_name,
            "source": {"volumeHandle": handle},
            "sourceVolumeMode": (pvc.get("spec") or {}).get("volumeMode") or "Filesystem",
            "volumeSnapshotRef": {
                "apiVersion": SNAPSHOT.api_version,
                "kind": SNAPSHOT.kind,
                "namespace": meta(snapshot)["namespace"],
                "name": meta(snapshot)["name"],
                "uid": meta(snapshot)["uid"],
            },
        },
    }


def _rfc3339(nanoseconds: object) -> str:
    if not isinstance(nanoseconds, int):
        return now()
    return datetime.fromtimestamp(nanoseconds / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
