"""The one way every controller declares its reconcile handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import kopf

from operators.common import metrics
from operators.common.kinds import VERSION, Kind

F = TypeVar("F", bound=Callable[..., Any])
RETRIES = 5
BACKOFF = 10


def reconciler(kind: Kind, *, updates: bool = True) -> Callable[[F], F]:
    """Run the handler when the operator starts (for every existing object), when an
    object is created, and (unless `updates` is off: an immutable spec) when its spec
    changes; counted and timed in the metrics; retried RETRIES times BACKOFF seconds
    apart, after which it waits for the object's next change instead of storming."""
    resource = (kind.group, VERSION, kind.plural)

    def register(handler: F) -> F:
        timed = metrics.reconciled(kind.kind)(handler)
        kopf.on.resume(*resource, retries=RETRIES, backoff=BACKOFF)(timed)
        kopf.on.create(*resource, retries=RETRIES, backoff=BACKOFF)(timed)
        if updates:
            kopf.on.update(*resource, field="spec", retries=RETRIES, backoff=BACKOFF)(timed)
        return timed

    return register
