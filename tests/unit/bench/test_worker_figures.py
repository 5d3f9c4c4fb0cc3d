"""The workers benchmark's visibility figures: latency, and where the machine's CPU went meanwhile."""
from __future__ import annotations

import argparse

from bench.drain import Drain
from bench.visibility import Visibility
from bench.worker_figures import _catalog, _visibility
from bench.worker_phases import CatalogRound, Drained, Followed


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


def drained(cpu_s: float, db_cpu_s: float, startup_cpu_s: float) -> Drained:
    return Drained(Drain(1000, 1000, 1.0, 0.1), 0, 0, 0, cpu_s=cpu_s, db_cpu_s=db_cpu_s, startup_cpu_s=startup_cpu_s)


def test_the_catalog_figures_give_two_workers_cpu_a_variant_against_ones_without_their_start_ups():
    # given 1,000 groups of 5 in each of three rounds: one worker spent 0.4 s on them and 0.5 s starting,
    # two spent 0.42 s, once 0.6 s, and 1.0 s starting; two at one batch each spent 0.38 s
    args = argparse.Namespace(variants_per_group=5, groups=1000)
    one = drained(0.9, db_cpu_s=0.3, startup_cpu_s=0.5)
    at_one = (1, drained(1.38, db_cpu_s=0.3, startup_cpu_s=1.0))
    rounds = [CatalogRound(one, drained(1.0 + spent, db_cpu_s=0.33, startup_cpu_s=1.0), at_one)
              for spent in (0.42, 0.6, 0.42)]

    figures = _catalog(args, rounds)

    # then each round has its ratios, and the medians are not moved by the round out of line
    assert [line["catalog_cpu_ratio_2w_1w"] for line in figures["catalog_rounds"]] == [1.05, 1.5, 1.05]
    assert figures["catalog_cpu_ratio_2w_1w_median"] == 1.05
    assert figures["catalog_db_cpu_ratio_2w_1w_median"] == 1.1
    assert figures["catalog_cpu_ratio_2w_at_1w_median"] == 0.95
    assert figures["catalog_2w_batch_concurrency"] == 1
