"""`from_zero`: a counter with a series for every combination of its label values, each at 0."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from erp_sync.shared.counters import from_zero


def test_every_combination_of_the_label_values_is_a_series_at_zero():
    registry = CollectorRegistry()
    from_zero(Counter("calls", "calls", ["call", "result"], registry=registry), call=("push", "probe"),
              result=("ok", "error"))

    samples = {(s.labels["call"], s.labels["result"]): s.value
               for s in registry.collect().__next__().samples if s.name == "calls_total"}
    assert samples == {("push", "ok"): 0, ("push", "error"): 0, ("probe", "ok"): 0, ("probe", "error"): 0}
