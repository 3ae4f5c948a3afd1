"""What every child object carries: ownership and the labels that tie it to its parent."""

from __future__ import annotations

from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
PROJECT = "ostack.dev/project"
OWNER_KIND = "ostack.dev/owner-kind"
OWNER_NAME = "ostack.dev/owner-name"
MANAGER = "ostack"


def child_labels(parent: dict[str, Any], project: str) -> dict[str, str]:
    """The labels DESIGN.md gives every child: who manages it, for whom, and why."""
    return {
        MANAGED_BY: MANAGER,
        PROJECT: project,
        OWNER_KIND: parent["kind"],
        OWNER_NAME: parent["metadata"]["name"],
    }


def owner_reference(parent: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to `parent`, so the garbage collector deletes the child with it."""
    return {
        "apiVersion": parent["apiVersion"],
        "kind": parent["kind"],
        "name": parent["metadata"]["name"],
        "uid": parent["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(
    parent: dict[str, Any],
    project: str,
    name: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**(labels or {}), **child_labels(parent, project)},
        "ownerReferences": [owner_reference(parent)],
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def owned_by_selector(kind: str) -> str:
    """A label selector for every child of one ostack kind."""
    return f"{MANAGED_BY}={MANAGER},{OWNER_KIND}={kind}"
