"""Writing an object's status: only when it changed, with an Event on each transition."""

from __future__ import annotations

from typing import Any

import kopf

from operators.common import kube
from operators.common.conditions import is_subset, set_condition
from operators.common.status import Reason


def report(obj: dict[str, Any], fields: dict[str, Any], ready: tuple[bool, Reason, str]) -> bool:
    """Patch `fields` and the Ready condition into the status unless they are there
    already, with an Event when the phase (or, for kinds without one, Ready's reason)
    changes. Returns whether anything was written."""
    current = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    status = {
        "observedGeneration": generation,
        **fields,
        "conditions": set_condition(
            current.get("conditions", []), "Ready", *ready, generation=generation
        ),
    }
    if is_subset(status, current):
        return False
    meta = obj["metadata"]
    kube.patch_status(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), status)
    if "phase" in fields:
        now, before = fields["phase"], current.get("phase")
        reason = str(now).title().replace("_", "").replace("-", "")
    else:
        now, before = str(ready[1]), _ready_reason(current)
        reason = now
    if now != before:
        failed = ready[1] in (Reason.INVALID_CONFIGURATION, Reason.UNRECOVERABLE_ERROR)
        kopf.event(obj, type="Warning" if failed else "Normal", reason=reason, message=ready[2])
    return True


def _ready_reason(status: dict[str, Any]) -> str | None:
    ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
    return ready[0].get("reason") if ready else None
