"""Which namespace belongs to which Project, as kopf indexes every service can read.

Registered once, on import, however many services share the process.
"""

from __future__ import annotations

from typing import Any

import kopf

from operators.common.kinds import VERSION
from operators.identity.api import PROJECT

PROJECTS = (PROJECT.group, VERSION, PROJECT.plural)


@kopf.index(*PROJECTS)
def project_by_namespace(name: str, spec: kopf.Spec, **_: Any) -> dict[str, str]:
    return {spec.get("namespace") or name: name}


@kopf.index(*PROJECTS)
def namespace_by_project(name: str, spec: kopf.Spec, **_: Any) -> dict[str, str]:
    return {name: spec.get("namespace") or name}


def first(index: Any, key: str) -> Any | None:
    """The one value an index holds under `key`, or None."""
    store = index.get(key)
    return next(iter(store), None) if store is not None else None


def project_of(namespace: str, indexes: dict[str, Any]) -> str | None:
    return first(indexes["project_by_namespace"], namespace)


def namespaces_of(indexes: dict[str, Any]) -> dict[str, str]:
    """Every Project's namespace, by Project name."""
    return {name: next(iter(store)) for name, store in indexes["namespace_by_project"].items()}


def all_of(index: Any, key: Any) -> list[Any]:
    """Every value an index holds under `key`, sorted."""
    store = index.get(key)
    return sorted(store) if store is not None else []
