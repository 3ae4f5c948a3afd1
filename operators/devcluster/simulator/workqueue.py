"""A delaying, de-duplicating work queue (client-go's semantics) and per-key step timers."""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Key:
    """What a reconciler works on: its name and the object's namespace/name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


class DelayQueue:
    """Keys become ready at a due time; a key is queued at most once, processed by one worker.

    A key added while a worker holds it is parked and queued again by `done`, so the
    worker's view is never stale for long and two workers never race on one object.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}  # queued keys; heap entries not matching are stale
        self._processing: set[Key] = set()
        self._parked: dict[Key, float] = {}
        self._seq = 0
        self._shutdown = False

    def add(self, key: Key, delay: float = 0.0) -> None:
        due = time.monotonic() + max(0.0, delay)
        with self._cond:
            if self._shutdown:
                return
            if key in self._processing:
                self._parked[key] = min(due, self._parked.get(key, due))
                return
            self._push(key, due)

    def get(self) -> Key | None:
        """The next due key (blocking), or None once shut down."""
        with self._cond:
            while not self._shutdown:
                wait = self._pop_ready()
                if isinstance(wait, Key):
                    return wait
                self._cond.wait(wait)
            return None

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            due = self._parked.pop(key, None)
            if due is not None and not self._shutdown:
                self._push(key, due)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)

    def _push(self, key: Key, due: float) -> None:
        # Only an earlier due time matters: an event must not wait behind a requeue delay.
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, key))
        self._cond.notify()

    def _pop_ready(self) -> Key | float | None:
        """A key that is due (now being processed), else how long to wait (None: no end)."""
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # superseded by an earlier entry
                continue
            wait = due - time.monotonic()
            if wait > 0:
                return wait
            heapq.heappop(self._heap)
            del self._due[key]
            self._processing.add(key)
            return key
        return None


class Timers:
    """Simulated durations: a step may happen once its timer, started when first asked, ran out.

    Kept in memory: a restarted simulator only waits once more, which a simulation allows.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[tuple[Key, str], float] = {}

    def remaining(self, key: Key, step: str, duration: float) -> float:
        """Seconds until `step` of `key` may happen (0 when it may), starting the clock."""
        now = time.monotonic()
        with self._lock:
            started = self._started.setdefault((key, step), now)
        return max(0.0, started + duration - now)

    def clear(self, key: Key, step: str) -> None:
        with self._lock:
            self._started.pop((key, step), None)

    def forget(self, key: Key) -> None:
        """Drop every timer of `key` (its object is gone)."""
        with self._lock:
            for timer in [t for t in self._started if t[0] == key]:
                del self._started[timer]
