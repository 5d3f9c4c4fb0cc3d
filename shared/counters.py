"""Counters whose every series exists, at 0, from the process's start.

A labelled counter's series appears only at its first count, already at 1: Prometheus's increase()
and rate() take the jump from no series to that first value for nothing, so an alert on the first
failed image, the first reused event id or the first refused webhook after a restart never fired.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

from prometheus_client import Counter


def from_zero(counter: Counter, **label_values: Sequence[str]) -> Counter:
    """`counter`, with a series for every combination of these label values created at 0."""
    names = list(label_values)
    for values in itertools.product(*label_values.values()):
        counter.labels(**dict(zip(names, values, strict=True)))
    return counter
