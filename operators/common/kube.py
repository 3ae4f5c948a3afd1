"""The thin layer between pure builders and the API: apply, delete, patch status.

Every write is server-side apply under the controller's own field manager, and is only
sent when the server's copy differs from the desired object, so a resync of a converged
object costs reads at most and writes nothing. Calls block: use them from sync handlers,
which kopf runs in a thread pool, never from async ones.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from typing import Any

from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

from operators.common.conditions import is_subset

log = logging.getLogger(__name__)


@functools.cache
def api_client() -> client.ApiClient:
    """One client per process: in-cluster credentials, else the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


@functools.cache
def _dynamic() -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api_client())


def resource(api_version: str, kind: str) -> Any:
    return _dynamic().resources.get(api_version=api_version, kind=kind)


def read(api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
    """The object as the server has it, or None."""
    try:
        obj = resource(api_version, kind).get(name=name, namespace=namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return obj.to_dict()


def apply(desired: dict[str, Any], manager: str, current: dict[str, Any] | None = None) -> bool:
    """Server-side apply `desired` unless `current` (read if not given) already matches.

    Returns whether a write was sent.
    """
    meta = desired["metadata"]
    if current is None:
        current = read(desired["apiVersion"], desired["kind"], meta["name"], meta.get("namespace"))
    if current is not None and is_subset(_comparable(desired), current):
        return False
    send(
        desired,
        "PATCH",
        [("fieldManager", manager), ("force", "true")],
        "application/apply-patch+yaml",
    )
    log.info("applied %s %s", desired["kind"], _where(meta))
    return True


def send(
    obj: dict[str, Any],
    method: str,
    query: list[tuple[str, str]],
    content_type: str = "application/json",
) -> None:
    """One write of `obj` under strict field validation: a field the real schema does not
    know is an error here, never silently pruned (the apiserver's default is to warn)."""
    meta = obj["metadata"]
    name = meta["name"] if method != "POST" else None
    path = resource(obj["apiVersion"], obj["kind"]).path(name=name, namespace=meta.get("namespace"))
    # The dynamic client has no fieldValidation parameter: the query goes in the path.
    query_string = urllib.parse.urlencode([*query, ("fieldValidation", "Strict")])
    _dynamic().request(method, f"{path}?{query_string}", body=obj, content_type=content_type)


def delete(api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
    """Delete if present; returns whether a delete was sent."""
    try:
        resource(api_version, kind).delete(name=name, namespace=namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    log.info("deleted %s %s", kind, f"{namespace}/{name}" if namespace else name)
    return True


def patch_status(
    api_version: str, kind: str, name: str, namespace: str | None, status: dict[str, Any]
) -> None:
    """Merge-patch the status subresource."""
    resource(api_version, kind).status.patch(
        name=name,
        namespace=namespace,
        body={"status": status},
        content_type="application/merge-patch+json",
    )


def _comparable(desired: dict[str, Any]) -> dict[str, Any]:
    # apiVersion/kind of an applied object always match; the name is the lookup key.
    return {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}


def _where(meta: dict[str, Any]) -> str:
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def put(path: str) -> None:
    """A bodiless PUT to an API path (KubeVirt's pause/unpause subresources)."""
    # KubeVirt answers with no object, which the dynamic client cannot deserialise.
    _dynamic().request("PUT", path, body={}, content_type="application/json", serialize=False)


def namespace_ending(error: ApiException) -> bool:
    """Whether a write failed only because its namespace is being deleted (nothing to
    reconcile any more: everything in it is going)."""
    return error.status == 403 and "is being terminated" in str(error.body)


def plain(body: Any) -> dict[str, Any]:
    """A kopf Body as the plain dict builders take."""
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": dict(body["metadata"]),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def reconcile_named(
    api_version: str, kind: str, namespace: str, name: str, step: Any, *args: Any
) -> None:
    """Read an object afresh and `step(obj, *args)` it, unless it is gone or going.

    For watch handlers that react to a related object: a namespace being deleted refuses
    every write, and there is then nothing left to reconcile.
    """
    obj = read(api_version, kind, name, namespace)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return
    try:
        step(obj, *args)
    except ApiException as error:
        if not namespace_ending(error):
            raise
