"""The orders benchmark's two-against-one figure: the workers' ratio with the machine's drift taken out."""
from __future__ import annotations

from bench.drain import Drain
from bench.order_figures import Round, over_rounds, two_against_one
from bench.order_phases import Pushed


def drained(worker_cpu_s: float, erp_cpu_s: float, processes: int) -> Pushed:
    return Pushed(Drain(8000, 8000, 20.0, 0.5), {"synced": 8000}, 8000, 0, 0, 0.9, worker_cpu_s, 0.5,
                  9.0, {"erp": erp_cpu_s, "machine": 40.0}, processes=processes)


def drained_short_of_ten() -> Pushed:
    """Two workers' drain that left 10 of 8,000 orders on the queue."""
    return Pushed(Drain(8000, 7990, 20.0, 0.5), {"synced": 7990}, 7990, 0, 10, 0.9, 14.0, 0.5, 9.0,
                  {"erp": 8.0, "machine": 40.0}, processes=2)


def test_two_workers_on_a_machine_that_got_slower_are_judged_against_its_drift():
    # given one worker at 1.5 ms an order after start-up, and two at 1.65 ms while the sandbox ERP
    # (the same work per order in both phases) spent 10% more per order in the second phase
    one = drained(8000 * 1.5e-3 + 0.5, erp_cpu_s=8.0, processes=1)
    two = drained(8000 * 1.65e-3 + 2 * 0.5, erp_cpu_s=8.8, processes=2)

    # then two workers cost 10% more raw, and nothing more once the machine's drift is taken out
    assert two_against_one(one, two) == {"worker_cpu_ratio_2w_1w": 1.1, "erp_cpu_ratio_2w_1w": 1.1,
                                          "worker_cpu_ratio_2w_1w_erp_adjusted": 1.0}


def test_without_the_erps_figures_there_is_no_ratio():
    one = drained(12.5, erp_cpu_s=0.0, processes=1)
    two = drained(14.0, erp_cpu_s=8.0, processes=2)

    assert two_against_one(one, two)["worker_cpu_ratio_2w_1w_erp_adjusted"] is None


def test_the_rounds_median_ratio_is_not_moved_by_one_round_out_of_line():
    # given three rounds: two where two workers spend 2% less than one, and one where a stall cost them 20% more
    one = drained(8000 * 1.5e-3 + 0.5, erp_cpu_s=8.0, processes=1)
    rounds = [Round(one, drained(8000 * ms * 1e-3 + 2 * 0.5, erp_cpu_s=8.0, processes=2)) for ms in (1.47, 1.8, 1.47)]

    figures = over_rounds(rounds)

    # then each round is reported, and the median says two cost 2% less
    assert [line["worker_cpu_ratio_2w_1w"] for line in figures["rounds"]] == [0.98, 1.2, 0.98]
    assert figures["worker_cpu_ratio_2w_1w_median"] == 0.98
    assert figures["all_rounds_complete"] is True


def test_a_round_with_the_idle_cores_filled_compares_two_workers_with_one_on_an_equally_busy_machine():
    one = drained(8000 * 1.6e-3 + 0.5, erp_cpu_s=8.0, processes=1)
    filled = drained(8000 * 1.5e-3 + 0.5, erp_cpu_s=8.0, processes=1)
    two = drained(8000 * 1.65e-3 + 2 * 0.5, erp_cpu_s=8.0, processes=2)

    figures = over_rounds([Round(one, two, filled)])

    assert figures["rounds"][0]["worker_cpu_ms_per_order_1w_filled_cores"] == 1.5
    assert figures["worker_cpu_ratio_2w_1w_filled_cores_median"] == 1.1


def test_a_round_whose_drain_left_orders_behind_is_reported_incomplete():
    one = drained(12.5, erp_cpu_s=8.0, processes=1)
    short = drained_short_of_ten()

    assert over_rounds([Round(one, short)])["all_rounds_complete"] is False


def test_pinned_drains_give_two_pinned_workers_against_one_and_one_pinned_against_one_free():
    one = drained(8000 * 1.6e-3 + 0.5, erp_cpu_s=8.0, processes=1)
    two = drained(8000 * 1.65e-3 + 2 * 0.5, erp_cpu_s=8.0, processes=2)
    one_pinned = drained(8000 * 1.4e-3 + 0.5, erp_cpu_s=8.0, processes=1)
    two_pinned = drained(8000 * 1.54e-3 + 2 * 0.5, erp_cpu_s=8.0, processes=2)

    line = over_rounds([Round(one, two, pinned=(one_pinned, two_pinned))])

    assert line["worker_cpu_ratio_2w_1w_pinned_median"] == 1.1
    assert line["pinned_cpu_ratio_1w_median"] == 0.875


def test_two_workers_at_half_the_push_concurrency_are_set_against_one_at_the_default():
    one = drained(8000 * 1.6e-3 + 0.5, erp_cpu_s=8.0, processes=1)
    two = drained(8000 * 1.65e-3 + 2 * 0.5, erp_cpu_s=8.0, processes=2)
    two_split = drained(8000 * 1.52e-3 + 2 * 0.5, erp_cpu_s=8.0, processes=2)

    line = over_rounds([Round(one, two, split=(4, two_split))])

    assert line["rounds"][0]["push_concurrency_2w_split"] == 4
    assert line["rounds"][0]["worker_cpu_ms_per_order_2w_split"] == 1.52
    assert line["worker_cpu_ratio_2w_split_1w_median"] == 0.95


def test_a_split_drain_that_left_orders_behind_makes_its_round_incomplete():
    one = drained(12.5, erp_cpu_s=8.0, processes=1)
    short = drained_short_of_ten()

    assert over_rounds([Round(one, one, split=(4, short))])["all_rounds_complete"] is False
