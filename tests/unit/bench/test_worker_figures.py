"""The workers benchmark's visibility figures: latency, and where the machine's CPU went meanwhile."""
from __future__ import annotations

import argparse

from bench.drain import Drain
from bench.visibility import Visibility
from bench.worker_figures import _catalog, _visibility
from bench.worker_phases import Drained, Followed


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


def test_the_catalog_figures_give_two_workers_cpu_a_variant_against_ones_without_their_start_ups():
    # given 1,000 groups of 5: one worker spent 0.4 s on them and 0.5 s starting, two spent 0.42 s and 1.0 s
    args = argparse.Namespace(variants_per_group=5, groups=1000, catalog_batches_2w=1)
    one = Drained(Drain(1000, 1000, 1.0, 0.1), 0, 0, 0, cpu_s=0.9, db_cpu_s=0.3, startup_cpu_s=0.5)
    two = Drained(Drain(1000, 1000, 0.8, 0.1), 0, 0, 0, cpu_s=1.42, db_cpu_s=0.3, startup_cpu_s=1.0)

    figures = _catalog(args, one, two)

    assert figures["catalog_cpu_ratio_2w_1w"] == 1.05
    assert figures["catalog_2w_batch_concurrency"] == 1
