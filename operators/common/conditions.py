"""Conditions as pure data: computing a status never needs the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from operators.common.status import Reason


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | str,
    reason: Reason,
    message: str,
    generation: int | None,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """`conditions` with `type_` set; lastTransitionTime moves only when status changes."""
    status_text = ("True" if status else "False") if isinstance(status, bool) else status
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != status_text
    condition = {
        "type": type_,
        "status": status_text,
        "reason": str(reason),
        "message": message,
        "lastTransitionTime": (at or now()) if changed else previous["lastTransitionTime"],
        "observedGeneration": generation,
    }
    if generation is None:
        del condition["observedGeneration"]
    return [c for c in conditions if c.get("type") != type_] + [condition]


def get_condition(status: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in (status or {}).get("conditions", []) if c.get("type") == type_), None)


def is_subset(wanted: Any, actual: Any) -> bool:
    """Whether `actual` already holds everything `wanted` says (extra fields are fine).

    This is how a resync of a converged object writes nothing: the desired object is
    compared with what the server has before any apply or status patch is sent.
    """
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            is_subset(value, actual.get(key)) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(wanted) == len(actual)
            and all(is_subset(w, a) for w, a in zip(wanted, actual, strict=True))
        )
    return wanted == actual
