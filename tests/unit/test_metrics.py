"""Metering's pure parts: per-Project gauges sum what each object last contributed, and
reconciles are counted by outcome."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from operators.common import metrics


def test_usage_sums_per_label_set_and_forgets_deleted_objects() -> None:
    gauge = metrics.Usage("ostack_test_things", "Things.", ("project", "phase"))
    gauge.observe("demo", "a", ("demo", "ACTIVE"), 1)
    gauge.observe("demo", "b", ("demo", "ACTIVE"), 1)
    gauge.observe("demo", "b", ("demo", "SHUTOFF"), 1)  # b changed phase
    gauge.observe("other", "a", ("other", "ACTIVE"), 1)
    assert gauge.totals() == {("demo", "ACTIVE"): 1, ("demo", "SHUTOFF"): 1, ("other", "ACTIVE"): 1}
    gauge.forget("demo", "a")
    assert (
        REGISTRY.get_sample_value("ostack_test_things", {"project": "demo", "phase": "ACTIVE"})
        is None
    )
    assert (
        REGISTRY.get_sample_value("ostack_test_things", {"project": "demo", "phase": "SHUTOFF"})
        == 1
    )


def test_reconciles_are_counted_by_outcome_and_errors_go_on() -> None:
    @metrics.reconciled("Widget")
    def handler(fail: bool) -> str:
        if fail:
            raise RuntimeError("no")
        return "ok"

    def count(result: str) -> float:
        labels = {"kind": "Widget", "result": result}
        return REGISTRY.get_sample_value("ostack_reconcile_total", labels) or 0

    assert handler(False) == "ok"
    with pytest.raises(RuntimeError):
        handler(True)
    assert (count("success"), count("error")) == (1, 1)
    assert (
        REGISTRY.get_sample_value("ostack_reconcile_duration_seconds_count", {"kind": "Widget"})
        == 2
    )
