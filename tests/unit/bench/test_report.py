"""The machine figures every benchmark line carries, to set runs on different machines side by side."""
from __future__ import annotations

from bench.report import machine


def test_a_line_says_how_fast_the_machine_runs_python_and_wakes_threads():
    figures = machine(((0.5, 0.4, 0.3), (1.5, 1.0, 0.5)))

    # a socket round trip between threads costs microseconds of CPU, not nothing and not milliseconds
    assert 0.5 < figures["wakeup_yardstick_us"] < 1000
    assert figures["python_yardstick_ms"] > 0
    assert (figures["loadavg_start"], figures["loadavg_end"]) == ([0.5, 0.4, 0.3], [1.5, 1.0, 0.5])
