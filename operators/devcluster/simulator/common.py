"""What every part of the simulator shares: its contract (annotations, driver), delays, helpers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from operators.devcluster.simulator.kube import Obj, meta

# -- the simulator's contract with tests and operators ----------------------------------------

SIM_PREFIX = "sim.ostack.dev/"
#: On a VM: "true" pauses its VMI (stand-in for the pause subresource).
PAUSED = f"{SIM_PREFIX}paused"
#: On a VM or its namespace: its VMI cannot be scheduled; the value is the message.
FAIL_SCHEDULE = f"{SIM_PREFIX}fail-schedule"
#: On a DataVolume or its namespace: its import fails; the value is the message.
FAIL_IMPORT = f"{SIM_PREFIX}fail-import"
#: On an upload DataVolume: "true" means the upload finished (stand-in for virtctl).
UPLOADED = f"{SIM_PREFIX}uploaded"
#: On a Cluster API Cluster: while present, its deletion does not complete (machines
#: that take their time to go).
HOLD_DELETION = f"{SIM_PREFIX}hold-deletion"

#: The CSI driver (and external provisioner) name the simulator answers for.
DRIVER = "sim.csi.ostack.dev"
STORAGE_CLASS_NAME = "standard"
SNAPSHOT_CLASS_NAME = "standard"
NODE_NAME = "sim-node-0"

ENV_PREFIX = "OSTACK_SIM_"


@dataclass(frozen=True)
class Delays:
    """How long the simulated runtime takes, in seconds (import_steps is a count).

    Every field can be overridden with an environment variable OSTACK_SIM_<FIELD>, e.g.
    OSTACK_SIM_VM_START=2.
    """

    vm_start: float = 0.2
    import_step: float = 0.2
    import_steps: int = 5
    bind: float = 0.2
    resize: float = 0.2
    snapshot: float = 0.2
    cluster_step: float = 0.2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Delays:
        """Defaults, then OSTACK_SIM_* variables, then `overrides`."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(f"{ENV_PREFIX}{field.name.upper()}")
            if raw is None:
                continue
            try:
                values[field.name] = int(raw) if field.type == "int" else float(raw)
            except ValueError:
                raise ValueError(
                    f"{ENV_PREFIX}{field.name.upper()}={raw!r}: not a number"
                ) from None
        return cls(**{**values, **overrides})


# -- time -------------------------------------------------------------------------------------


def now() -> str:
    """RFC 3339 to the second, as Kubernetes writes metav1.Time."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- annotations ------------------------------------------------------------------------------


def annotation(obj: Obj | None, key: str) -> str | None:
    if obj is None:
        return None
    return (meta(obj).get("annotations") or {}).get(key)


def first_annotation(key: str, *objs: Obj | None) -> str | None:
    """The annotation on the first of `objs` that has it (object before its namespace)."""
    for obj in objs:
        value = annotation(obj, key)
        if value is not None:
            return value
    return None


def sim_annotations(obj: Obj) -> dict[str, str]:
    return {
        k: v for k, v in (meta(obj).get("annotations") or {}).items() if k.startswith(SIM_PREFIX)
    }


# -- status -----------------------------------------------------------------------------------


def status_patch(current: Obj | None, desired: Obj) -> Obj:
    """The top-level status fields that differ; a None in `desired` removes the field.

    Comparing before writing is what keeps a converged object free of writes.
    """
    current = current or {}
    return {key: value for key, value in desired.items() if current.get(key) != value}


def conditions(
    existing: Iterable[Obj] | None,
    desired: Iterable[Obj],
    stamp: str,
    *,
    time_fields: tuple[str, ...] = ("lastTransitionTime",),
) -> list[Obj]:
    """`desired` conditions with their timestamps carried over while the status holds.

    A condition whose status did not change keeps its times, so a reconcile at rest builds
    exactly what is stored; a changed one gets `stamp` in every field of `time_fields`.
    """
    by_type = {c.get("type"): c for c in existing or []}
    merged = []
    for condition in desired:
        old = by_type.get(condition["type"])
        fresh = {k: v for k, v in condition.items() if v not in (None, "")}
        for time_field in time_fields:
            keep = old is not None and old.get("status") == condition["status"]
            fresh[time_field] = old.get(time_field, stamp) if keep and old else stamp
        merged.append(fresh)
    return merged


def condition(type_: str, status: bool, reason: str = "", message: str = "") -> Obj:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def find_condition(status: Obj | None, type_: str) -> Obj | None:
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


# -- quantities -------------------------------------------------------------------------------


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity as a number, None if absent or malformed."""
    if value in (None, ""):
        return None
    try:
        return Decimal(parse_quantity(value))
    except (ValueError, TypeError):
        return None


_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def format_bytes(size: int) -> str:
    """Bytes as the apiserver would print the quantity: the largest exact binary suffix."""
    for suffix, factor in _BINARY:
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)
