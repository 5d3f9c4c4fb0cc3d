"""The workers benchmark's visibility figures: latency, and where the machine's CPU went meanwhile."""
from __future__ import annotations

import argparse

from bench.visibility import Visibility
from bench.worker_figures import _visibility
from bench.worker_phases import Followed


def test_a_visibility_run_says_how_busy_the_machine_was_and_what_each_process_spent_an_event():
    # given 1,000 events accepted in a second, seen after 10 to 1,000 ms, on a machine 97% busy
    seen = Visibility(sent=1000, accepted=1000, polls=400, from_202_s=[n / 1000 for n in range(10, 1010)])
    spent = {"api": 0.45, "broker": 0.2, "benchmark": 0.22}
    args = argparse.Namespace(rate=1000.0, duration=1.0)

    figures = _visibility(args, Followed(seen, spent, cpu_busy=0.9712))

    # then the line carries the busy share and each process's CPU an accepted event, the measuring's own too
    assert figures["visible_cpu_busy"] == 0.97
    assert figures["visible_cpu_ms_per_event"] == {"api": 0.45, "broker": 0.2, "benchmark": 0.22}
    assert (figures["visible_p50_ms"], figures["visible_p99_ms"]) == (509.0, 999.0)
