"""The status vocabulary every kind shares: conditions, their reasons, observedGeneration."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from operators.common.schema import ApiModel, Timestamp, list_map


class Reason(StrEnum):
    """Why a condition is what it is: a category a user can act on."""

    PROGRESSING = "Progressing"
    """Work is under way; wait."""
    INVALID_CONFIGURATION = "InvalidConfiguration"
    """The spec cannot be satisfied as written; the user must change it."""
    TRANSIENT_ERROR = "TransientError"
    """Something failed that may succeed later; the controller retries."""
    UNRECOVERABLE_ERROR = "UnrecoverableError"
    """Something failed that retrying will not fix; an operator must look."""
    SUCCEEDED = "Succeeded"
    """The object is what its spec asks for."""


class Condition(ApiModel):
    """One aspect of the object's observed state, as Kubernetes' metav1.Condition."""

    type: str = Field(max_length=316, pattern=r"^([a-zA-Z0-9.-]+/)?[A-Za-z][A-Za-z0-9_]*$")
    """The aspect: `Ready` on every kind, `Progressing` where work takes time."""
    status: Literal["True", "False", "Unknown"]
    """Whether the aspect holds."""
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """A CamelCase category: Progressing, InvalidConfiguration, TransientError,
    UnrecoverableError or Succeeded."""
    message: str = Field(default="", max_length=32768)
    """What happened and why, in words a user can act on."""
    last_transition_time: Timestamp
    """When `status` last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The `metadata.generation` the condition was computed from."""


class Status(ApiModel):
    """Fields every kind's status has."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The `metadata.generation` this status describes; older than the object's
    generation means the controller has not caught up with the latest spec yet."""
    conditions: list[Condition] = Field(
        default_factory=list, max_length=16, json_schema_extra=list_map("type")
    )
    """The latest observations of the object's state. Every kind has `Ready`."""
