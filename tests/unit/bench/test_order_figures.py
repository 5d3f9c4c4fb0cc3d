"""The orders benchmark's two-against-one figure: the workers' ratio with the machine's drift taken out."""
from __future__ import annotations

from bench.drain import Drain
from bench.order_figures import two_against_one
from bench.order_phases import Pushed


def drained(worker_cpu_s: float, erp_cpu_s: float, processes: int) -> Pushed:
    return Pushed(Drain(8000, 8000, 20.0, 0.5), {"synced": 8000}, 8000, 0, 0, 0.9, worker_cpu_s, 0.5,
                  9.0, {"erp": erp_cpu_s, "machine": 40.0}, processes=processes)


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
