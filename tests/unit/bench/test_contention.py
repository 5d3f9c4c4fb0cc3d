"""The contention benchmark: the same work timed alone and two at once, for each kind of work."""
from __future__ import annotations

import argparse

import bench.contention
from bench.contention import WORK, cpu_ms_a_repetition, figures


def test_each_repetition_of_each_process_is_timed_on_its_own():
    # two processes at once, three repetitions each: six timings, each some CPU
    timings = cpu_ms_a_repetition("memory", 2, 2_000, 3)

    assert len(timings) == 6 and all(timing > 0 for timing in timings)


def test_the_line_gives_each_kind_two_at_once_against_one_alone_the_median_of_the_rounds(monkeypatch):
    # given rounds in which two at once cost 1.1, 1.3 and 1.2 times what one alone did
    costs = iter([[10.0], [11.0], [10.0], [13.0], [20.0], [24.0]] * len(WORK))
    monkeypatch.setattr(bench.contention, "cpu_ms_a_repetition", lambda *_: next(costs))

    line = figures(argparse.Namespace(size=2_000, repeats=1, rounds=3))

    # then each kind's ratio is the middle round's, with the range of all three
    for kind in WORK:
        assert line[f"{kind}_ratio"] == 1.2 and line[f"{kind}_ratio_range"] == [1.1, 1.3]
        assert (line[f"{kind}_alone_ms"], line[f"{kind}_two_at_once_ms"]) == (10.0, 13.0)
