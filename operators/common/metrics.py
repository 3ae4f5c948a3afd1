"""Metering (Ceilometer's job) as Prometheus metrics, served by `--metrics-port`.

Two kinds of figures:
- how the controllers work: reconciles per kind and outcome, and their durations;
- what each Project uses: gauges summed per Project at scrape time from what the
  service last observed of each object, so a deleted object simply stops counting and
  label sets stay stable (one series per Project, and per phase or bucket where named).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILES = Counter(
    "ostack_reconcile_total",
    "Reconciles by kind and outcome (success, error).",
    ["kind", "result"],
)
DURATION = Histogram(
    "ostack_reconcile_duration_seconds",
    "How long one reconcile took, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

F = TypeVar("F", bound=Callable[..., Any])


def reconciled(kind: str) -> Callable[[F], F]:
    """Count and time a reconcile handler; an exception counts as an error and goes on
    to kopf, which retries as the handler is declared to."""

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = handler(*args, **kwargs)
            except Exception:
                RECONCILES.labels(kind, "error").inc()
                raise
            finally:
                DURATION.labels(kind).observe(time.perf_counter() - started)
            RECONCILES.labels(kind, "success").inc()
            return result

        return timed  # type: ignore[return-value]

    return wrap


class Usage(Collector):
    """A per-Project gauge family: each object contributes a value under its labels, and
    a scrape sums the contributions per label set."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._lock = threading.Lock()
        self._by_object: dict[tuple[str, str], tuple[tuple[str, ...], float]] = {}
        REGISTRY.register(self)

    def observe(self, namespace: str, name: str, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            self._by_object[(namespace, name)] = (labels, value)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._by_object.pop((namespace, name), None)

    def totals(self) -> dict[tuple[str, ...], float]:
        sums: dict[tuple[str, ...], float] = {}
        with self._lock:
            for labels, value in self._by_object.values():
                sums[labels] = sums.get(labels, 0.0) + value
        return sums

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for labels, value in sorted(self.totals().items()):
            family.add_metric(list(labels), value)
        yield family
