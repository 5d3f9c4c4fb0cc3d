"""The contention benchmark: the same work timed alone and two at once, for each kind of work."""
from __future__ import annotations

import argparse

from bench.contention import WORK, cpu_ms_a_repetition, figures


def test_every_repetition_of_every_process_is_timed():
    # two processes at once, three repetitions each: the mean of six positive timings
    assert cpu_ms_a_repetition("allocate", 2, 20_000, 3) > 0


def test_the_line_sets_two_at_once_against_one_alone_for_each_kind_of_work():
    line = figures(argparse.Namespace(keys=2_000, repeats=1, rounds=2))

    for kind in WORK:
        low, high = line[f"{kind}_ratio_range"]
        assert low <= line[f"{kind}_ratio"] <= high
        assert line[f"{kind}_alone_ms"] > 0 and line[f"{kind}_two_at_once_ms"] > 0
    assert line["benchmark"] == "contention" and line["cores"] >= 1
