"""A small dict-in, dict-out layer over the official client for the kinds the simulator touches.

Non-core groups go through `CustomObjectsApi`, which takes and returns plain dicts (its paths
are generic, so it serves storage.k8s.io as well as CRDs). Core kinds go through `CoreV1Api`
with `_preload_content=False`, so they come back as the JSON the apiserver sent rather than
as models: every reconciler then reads one shape, and no field is lost in a model round trip.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

FIELD_MANAGER = "ostack-simulator"
MERGE_PATCH = "application/merge-patch+json"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One API resource; `core` is the snake_case name CoreV1Api methods use, for core kinds."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    core: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


VM = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VMI = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
DATA_VOLUME = Resource("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume")
DATA_SOURCE = Resource("cdi.kubevirt.io", "v1beta1", "datasources", "DataSource")
SNAPSHOT = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot")
SNAPSHOT_CONTENT = Resource(
    "snapshot.storage.k8s.io",
    "v1",
    "volumesnapshotcontents",
    "VolumeSnapshotContent",
    namespaced=False,
)
SNAPSHOT_CLASS = Resource(
    "snapshot.storage.k8s.io",
    "v1",
    "volumesnapshotclasses",
    "VolumeSnapshotClass",
    namespaced=False,
)
STORAGE_CLASS = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
PVC = Resource(
    "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", core="persistent_volume_claim"
)
PV = Resource(
    "", "v1", "persistentvolumes", "PersistentVolume", namespaced=False, core="persistent_volume"
)
NAMESPACE = Resource("", "v1", "namespaces", "Namespace", namespaced=False, core="namespace")


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def ref(obj: Obj) -> str:
    """`namespace/name` (or `name`) for log lines."""
    m = meta(obj)
    return f"{m['namespace']}/{m.get('name')}" if m.get("namespace") else str(m.get("name"))


def owner_ref(obj: Obj, resource: Resource) -> Obj:
    """A controller ownerReference to `obj`, as the real controllers set it."""
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": meta(obj)["name"],
        "uid": meta(obj)["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference marked controller, if any."""
    for owner in meta(obj).get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


class Kube:
    """get/list/watch/create/patch/delete by `Resource`, all with plain dicts."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    # -- reads

    def get(self, resource: Resource, name: str, namespace: str = "") -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            if resource.core:
                return self._core("read", resource, name=name, namespace=namespace)
            return self._custom("get", resource, name=name, namespace=namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list(self, resource: Resource, namespace: str = "") -> tuple[list[Obj], str]:
        """Items and the list's resourceVersion; all namespaces unless `namespace` is given."""
        if resource.core:
            if resource.namespaced and not namespace:
                fn = getattr(self.core, f"list_{resource.core}_for_all_namespaces")
                body = _json(fn(_preload_content=False))
            else:
                body = self._core("list", resource, namespace=namespace)
        else:
            body = self._custom("list", resource, namespace=namespace)
        return list(body.get("items") or []), str(meta(body).get("resourceVersion", ""))

    def watch(
        self, resource: Resource, watcher: watch.Watch, resource_version: str, timeout: int
    ) -> Iterator[Obj]:
        """Raw watch events (dicts with `type` and `object`) from `resource_version` on."""
        fn: Callable[..., Any]
        args: tuple[str, ...] = ()
        if resource.core:
            suffix = "_for_all_namespaces" if resource.namespaced else ""
            fn = getattr(self.core, f"list_{resource.core}{suffix}")
        else:
            fn = self.custom.list_cluster_custom_object
            args = (resource.group, resource.version, resource.plural)
        return watcher.stream(
            fn,
            *args,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
        )

    # -- writes

    def create(self, resource: Resource, body: Obj, namespace: str = "") -> Obj:
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
        if resource.core:
            return self._core("create", resource, namespace=namespace, body=body)
        return self._custom("create", resource, namespace=namespace, body=body)

    def patch(self, resource: Resource, name: str, body: Obj, namespace: str = "") -> Obj:
        """A JSON merge patch of the object (not of its status subresource)."""
        return self._patch("", resource, name, body, namespace)

    def patch_status(self, resource: Resource, name: str, status: Obj, namespace: str = "") -> Obj:
        """A JSON merge patch of `status` through the status subresource."""
        return self._patch("_status", resource, name, {"status": status}, namespace)

    def delete(self, resource: Resource, name: str, namespace: str = "", uid: str = "") -> bool:
        """Delete (only the object with `uid`, if given); False if it was already gone."""
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
            propagation_policy="Background",
        )
        try:
            if resource.core:
                self._core("delete", resource, name=name, namespace=namespace, body=options)
            else:
                self._custom("delete", resource, name=name, namespace=namespace, body=options)
        except ApiException as error:
            if error.status in (404, 409):  # 409: the uid precondition failed, a new object
                return False
            raise
        return True

    def _patch(self, sub: str, resource: Resource, name: str, body: Obj, namespace: str) -> Obj:
        kwargs = {"field_manager": FIELD_MANAGER, "_content_type": MERGE_PATCH}
        if resource.core:
            return self._core(
                f"patch{sub}", resource, name=name, namespace=namespace, body=body, **kwargs
            )
        return self._custom(
            f"patch{sub}", resource, name=name, namespace=namespace, body=body, **kwargs
        )

    # -- plumbing

    def _core(
        self, verb: str, resource: Resource, *, namespace: str = "", name: str = "", **kwargs: Any
    ) -> Obj:
        # CoreV1Api names: read_namespaced_persistent_volume_claim, patch_persistent_volume...
        action, _, sub = verb.partition("_")
        scope = "namespaced_" if resource.namespaced else ""
        method = f"{action}_{scope}{resource.core}" + (f"_{sub}" if sub else "")
        args: list[str] = [name] if name else []
        if resource.namespaced:
            args.append(namespace)
        if action == "create":
            kwargs["field_manager"] = FIELD_MANAGER
        return _json(getattr(self.core, method)(*args, _preload_content=False, **kwargs))

    def _custom(
        self, verb: str, resource: Resource, *, namespace: str = "", name: str = "", **kwargs: Any
    ) -> Obj:
        action, _, sub = verb.partition("_")
        scope = (
            "namespaced" if resource.namespaced and (namespace or action != "list") else ("cluster")
        )
        method = f"{action}_{scope}_custom_object" + (f"_{sub}" if sub else "")
        args: list[str] = [resource.group, resource.version]
        if scope == "namespaced":
            args.append(namespace)
        args.append(resource.plural)
        if name:
            args.append(name)
        if action == "create":
            kwargs["field_manager"] = FIELD_MANAGER
        result = getattr(self.custom, method)(*args, **kwargs)
        return result if isinstance(result, dict) else {}


def _json(response: Any) -> Obj:
    """The decoded body of a raw (`_preload_content=False`) response."""
    try:
        data = response.data
    finally:
        response.release_conn()
    return json.loads(data) if data else {}
