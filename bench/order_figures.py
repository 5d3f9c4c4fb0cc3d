"""The orders benchmark's one JSON line: figures, targets and how each was measured."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.order_phases import Latency, Pushed
from bench.report import LoadAverages, machine, ratio, ratio_medians
from bench.visibility import percentile_ms
from erp_sync.shared.settings import Settings

TARGET_1W_PER_S = 200.0
TARGET_SCALING = 1.6
TARGET_CPU_MS_PER_ORDER = 2.0  # issue 19: the orders worker's CPU per order pushed


def _counts(result: Pushed) -> dict[str, Any]:
    synced = result.statuses.get("synced", 0)
    return {"synced": synced, "not_synced": result.drain.expected - synced, "statuses": result.statuses,
            "in_erp": result.erp_orders, "retried": result.retried, "left_on_queue": result.left_on_queue,
            "elapsed_s": round(result.drain.elapsed_s, 3), "cpu_busy": round(result.cpu_busy, 2),
            "worker_cpu_ms_per_order": round(result.cpu_ms_per_order, 3),
            "worker_cpu_ms_per_order_after_startup": round(result.cpu_ms_per_order_after_startup, 3),
            "database_cpu_ms_per_order": round(result.database_cpu_ms_per_order, 3),
            # Every process's share: what a faster worker can gain in orders/s on this machine.
            "cpu_budget_ms_per_order": result.cpu_budget_ms_per_order(),
            "first_synced_s": None if result.drain.first_row_s is None else round(result.drain.first_row_s, 3)}


def two_against_one(one: Pushed, two: Pushed) -> dict[str, float | None]:
    """Two workers' CPU per order against one's, raw and against the sandbox ERP's drift.

    The sandbox ERP does the same work for an order whatever the number of workers, so its own
    ratio (two / one) is how much the machine itself changed between the two phases; within one
    run it has ranged from 0.81 to 1.08.
    """
    one_erp = one.cpu_budget_ms_per_order().get("erp", 0.0)
    two_erp = two.cpu_budget_ms_per_order().get("erp", 0.0)
    if not one.cpu_ms_per_order_after_startup or not one_erp or not two_erp:
        return {"worker_cpu_ratio_2w_1w": None, "erp_cpu_ratio_2w_1w": None, "worker_cpu_ratio_2w_1w_erp_adjusted": None}
    workers = two.cpu_ms_per_order_after_startup / one.cpu_ms_per_order_after_startup
    erp = two_erp / one_erp
    return {"worker_cpu_ratio_2w_1w": round(workers, 3), "erp_cpu_ratio_2w_1w": round(erp, 3),
            "worker_cpu_ratio_2w_1w_erp_adjusted": round(workers / erp, 3)}


@dataclass(frozen=True)
class Round:
    """Drains of the same orders by one worker and by two, and optionally by each kind set apart.

    `one_filled_cores`: one worker beside lowest-priority spinners filling the idle cores (bench.spinners).
    `pinned`: one worker on one core, then two workers each on a core of its own.
    `split`: two workers at the ORDER_PUSH_CONCURRENCY given with them.
    """

    one: Pushed
    two: Pushed
    one_filled_cores: Pushed | None = None
    pinned: tuple[Pushed, Pushed] | None = None
    split: tuple[int, Pushed] | None = None

    def figures(self) -> dict[str, Any]:
        line: dict[str, Any] = {"worker_cpu_ms_per_order_1w": _ms_an_order(self.one),
                                "worker_cpu_ms_per_order_2w": _ms_an_order(self.two),
                                **two_against_one(self.one, self.two),
                                "cpu_busy_1w": round(self.one.cpu_busy, 2), "cpu_busy_2w": round(self.two.cpu_busy, 2)}
        if self.one_filled_cores is not None:
            line |= {"worker_cpu_ms_per_order_1w_filled_cores": _ms_an_order(self.one_filled_cores),
                     "worker_cpu_ratio_2w_1w_filled_cores": _ratio(self.two, self.one_filled_cores),
                     "cpu_busy_1w_filled_cores": round(self.one_filled_cores.cpu_busy, 2)}
        if self.pinned is not None:
            one_pinned, two_pinned = self.pinned
            line |= {"worker_cpu_ms_per_order_1w_pinned": _ms_an_order(one_pinned),
                     "worker_cpu_ms_per_order_2w_pinned": _ms_an_order(two_pinned),
                     "worker_cpu_ratio_2w_1w_pinned": _ratio(two_pinned, one_pinned),
                     "pinned_cpu_ratio_1w": _ratio(one_pinned, self.one)}
        if self.split is not None:
            push_concurrency, two_split = self.split
            line |= {"push_concurrency_2w_split": push_concurrency,
                     "worker_cpu_ms_per_order_2w_split": _ms_an_order(two_split),
                     "worker_cpu_ratio_2w_split_1w": _ratio(two_split, self.one),
                     "orders_2w_split_per_s": round(two_split.drain.rate, 1),
                     "cpu_busy_2w_split": round(two_split.cpu_busy, 2)}
        return line

    def complete(self) -> bool:
        split = self.split[1] if self.split else None
        return all(_complete(result) for result in (self.one, self.two, self.one_filled_cores, *(self.pinned or ()), split)
                   if result is not None)


def _ms_an_order(result: Pushed) -> float:
    return round(result.cpu_ms_per_order_after_startup, 3)


def _ratio(result: Pushed, against: Pushed) -> float | None:
    return ratio(result.cpu_ms_per_order_after_startup, against.cpu_ms_per_order_after_startup)


def over_rounds(rounds: list[Round]) -> dict[str, Any]:
    """Each round's figures, and the median of each ratio over the rounds."""
    each = [one_round.figures() for one_round in rounds]
    return {"rounds": each, **ratio_medians(each), "all_rounds_complete": all(one_round.complete() for one_round in rounds)}


def _complete(result: Pushed) -> bool:
    return result.drain.complete and result.left_on_queue == 0 and result.erp_orders == result.drain.expected


def _ms(values: list[float], fraction: float) -> float:
    return round(percentile_ms(values, fraction), 1)


def _paced_counts(seen: Latency) -> dict[str, Any]:
    published = len(seen.paced.published_at)
    return {"published": published, "synced": len(seen.latencies_s), "not_synced": published - len(seen.latencies_s),
            "statuses": seen.statuses, "in_erp": seen.erp_orders,
            "negative_latencies": sum(1 for value in seen.latencies_s if value < 0)}


def figures(args: argparse.Namespace, settings: Settings, rounds: list[Round],
            latencies: tuple[Latency, Latency, Latency], load: LoadAverages) -> dict[str, Any]:
    """The one JSON line's fields: the first round's drains in full, every round's two against one."""
    one, two = rounds[0].one, rounds[0].two
    seen, seen_by_two, seen_by_two_at_double = latencies
    one_rate, two_rate = one.drain.rate, two.drain.rate
    scaling = two_rate / one_rate if one_rate else 0.0
    return {
        "benchmark": "orders",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "orders_1w_per_s": round(one_rate, 1),
        "orders_2w_per_s": round(two_rate, 1),
        "scaling": round(scaling, 2),
        "worker_startup_cpu_s": round(one.startup_cpu_s, 3),
        # Start-up (imports, connections) is once per process, not per order: both are given.
        "worker_cpu_ms_per_order_1w": round(one.cpu_ms_per_order_after_startup, 3),
        "worker_cpu_ms_per_order_2w": round(two.cpu_ms_per_order_after_startup, 3),
        # The backends of the workers' connections (and of this benchmark's polling): the triggers' share.
        **two_against_one(one, two),
        **over_rounds(rounds),
        "database_cpu_ms_per_order_1w": round(one.database_cpu_ms_per_order, 3),
        "database_cpu_ms_per_order_2w": round(two.database_cpu_ms_per_order, 3),
        # Near 1.0 with one worker, a second one has no CPU left to scale into.
        "cpu_busy_1w": round(one.cpu_busy, 2),
        "cpu_busy_2w": round(two.cpu_busy, 2),
        "publish_to_synced_p50_ms": _ms(seen.latencies_s, 0.5),
        "publish_to_synced_p99_ms": _ms(seen.latencies_s, 0.99),
        "publish_to_synced_max_ms": _ms(seen.latencies_s, 1.0),
        "publish_to_synced_p99_ms_2w": _ms(seen_by_two.latencies_s, 0.99),
        # The same paced orders through one worker and through two, the machine not saturated:
        # what a second process costs, without a drain's contention for the cores.
        "worker_cpu_ms_per_order_paced_1w": round(seen.cpu_ms_per_order, 3),
        "worker_cpu_ms_per_order_paced_2w": round(seen_by_two.cpu_ms_per_order, 3),
        # An order costs more the fewer a process gets a second (each comes to colder caches, alone
        # in its batch): two workers at twice the rate, each getting what one got, against one.
        "worker_cpu_ms_per_order_paced_2w_double_rate": round(seen_by_two_at_double.cpu_ms_per_order, 3),
        "paced_cpu_ratio_2w_double_rate_1w": round(seen_by_two_at_double.cpu_ms_per_order / seen.cpu_ms_per_order, 3),
        "publish_to_synced_p99_ms_2w_double_rate": _ms(seen_by_two_at_double.latencies_s, 0.99),
        # Each a wake-up of a thread, or a thread made to wait for a core: what an order costs beyond its code.
        "context_switches_per_order_paced_1w": round(seen.context_switches_per_order, 1),
        "context_switches_per_order_paced_2w": round(seen_by_two.context_switches_per_order, 1),
        "offered_per_s": args.rate,
        "paced_duration_s": args.duration,
        "counts": {
            "1w": _counts(one),
            "2w": _counts(two),
            "paced": _paced_counts(seen),
            "paced_2w": _paced_counts(seen_by_two),
            "paced_2w_double_rate": _paced_counts(seen_by_two_at_double),
        },
        "publish_lag_p99_ms": _ms(seen.paced.lags_s, 0.99),
        "publish_confirm_p99_ms": _ms(seen.paced.confirms_s, 0.99),
        "target_met": {
            "orders_1w_per_s": _complete(one) and one_rate >= TARGET_1W_PER_S,
            "scaling": _complete(one) and _complete(two) and scaling >= TARGET_SCALING,
            "worker_cpu_ms_per_order_1w": _complete(one) and one.cpu_ms_per_order_after_startup <= TARGET_CPU_MS_PER_ORDER,
        },
        "target": {"orders_1w_per_s": TARGET_1W_PER_S, "scaling": TARGET_SCALING,
                   "worker_cpu_ms_per_order_1w": TARGET_CPU_MS_PER_ORDER},
        "orders_per_phase": args.orders,
        "skus": args.skus,
        "erp_order_mode": settings.erp_order_mode,
        "erp_connections": args.erp_connections,
        "worker_prefetch": settings.worker_prefetch, "worker_batch_size": settings.worker_batch_size,
        "order_push_concurrency": settings.order_push_concurrency,
        **machine(load),
        "method": {
            "throughput": "orders queue pre-filled with publish_order (confirmed, 64 threads); clock from spawning "
                          "`erp-sync worker orders` (start-up included) until every order has status synced, "
                          "polled every 50 ms; sandbox ERP (in-memory) on the same machine, keeping connections "
                          "alive (granian) or closing each after its answer (werkzeug): erp_connections",
            "latency": f"one worker, then two, then two at twice offered_per_s; {args.warmup:g} s of paced "
                       f"unmeasured orders synced first, then open-loop publish_order at offered_per_s; latency = orders.synced_at (worker's clock at the ERP's "
                       f"answer) - wall clock just before publish, both on this machine; the workers' CPU from the "
                       f"measured run's first publish until its last order is synced, per order",
        },
    }
