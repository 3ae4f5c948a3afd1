"""Where an Image is in its life, read from its DataVolume; and who may use it. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.common.status import Reason
from operators.image.api import ImageSpec

WAITING = {"Pending", "ImportScheduled", "CloneScheduled", "UploadScheduled", "UploadReady"}
WORKING = {
    "ImportInProgress",
    "CloneInProgress",
    "CSICloneInProgress",
    "SnapshotForSmartCloneInProgress",
}


@dataclass(frozen=True)
class Observed:
    """What the Image's status says about its data."""

    phase: str
    ready: tuple[bool, Reason, str]
    progress: str | None = None


def _condition(dv: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions = (dv.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


def observe(dv: dict[str, Any] | None, upload: bool) -> Observed:
    """Glance's phase for the DataVolume's state, with a condition a user can act on."""
    if dv is None:
        return Observed("queued", (False, Reason.PROGRESSING, "creating the DataVolume"))
    status = dv.get("status") or {}
    phase = status.get("phase", "Pending")
    progress = status.get("progress")
    running = _condition(dv, "Running")
    if phase == "Succeeded":
        return Observed("active", (True, Reason.SUCCEEDED, "the image is imported"), "100.0%")
    if phase == "Failed":
        message = running.get("message") or "CDI reported the import as failed"
        return Observed(
            "killed",
            (False, Reason.INVALID_CONFIGURATION, f"import failed: {message}; fix the source"),
            progress,
        )
    if running.get("reason") == "Error":
        # CDI retries a failing import itself: say why, and that it is being retried.
        message = f"import is failing and CDI retries it: {running.get('message', '')}"
        return Observed("importing", (False, Reason.TRANSIENT_ERROR, message), progress)
    if phase in WORKING:
        return Observed(
            "importing", (False, Reason.PROGRESSING, f"{phase} {progress or ''}".strip()), progress
        )
    if upload and phase in ("UploadReady", "UploadScheduled"):
        return Observed(
            "queued", (False, Reason.PROGRESSING, "waiting for the image to be uploaded")
        )
    return Observed("queued", (False, Reason.PROGRESSING, f"CDI: {phase}"))


def refusal(spec: ImageSpec, name: str, image_project: str, project: str) -> str | None:
    """Why `project` may not use this image (None when it may), as Glance decides it."""
    if project == image_project or spec.visibility in ("public", "community"):
        return None
    if spec.visibility == "shared" and project in (spec.shared_with or []):
        return None
    return (
        f"Image {name} of Project {image_project} is {spec.visibility} and not shared with"
        f" Project {project}"
    )
