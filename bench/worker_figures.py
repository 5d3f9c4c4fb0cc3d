"""The workers benchmark's one JSON line: figures, targets and how each was measured."""
from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from bench.report import LoadAverages, machine, ratio, ratio_medians
from bench.visibility import SLOWER_AFTER, Visibility, percentile_ms
from bench.worker_phases import CatalogRound, Drained, Followed
from erp_sync.shared.settings import Settings

TARGET_P99_MS = 100.0
TARGET_RATE = 500.0
TARGET_DURATION_S = 60.0
TARGET_INVENTORY_EPS = 5_000.0  # issue 19: one worker, pre-filled queue


def _after_startup_ms(result: Drained, units_per_event: int = 1) -> float:
    # Start-up (imports, connections) is once per process: two processes pay it twice.
    units = max(result.drain.processed * units_per_event, 1)
    return max(result.cpu_s - result.startup_cpu_s, 0.0) * 1000 / units


def _drained(prefix: str, result: Drained, unit: str = "event", units_per_event: int = 1) -> dict[str, Any]:
    drain = result.drain
    units = max(drain.processed * units_per_event, 1)
    return {
        f"{prefix}_cpu_ms_per_{unit}": round(result.cpu_s * 1000 / units, 4),
        f"{prefix}_cpu_ms_per_{unit}_after_startup": round(_after_startup_ms(result, units_per_event), 4),
        f"{prefix}_db_cpu_ms_per_{unit}": round(_db_ms(result, units_per_event), 4),
        f"{prefix}_s": round(drain.elapsed_s, 3),
        f"{prefix}_first_row_s": None if drain.first_row_s is None else round(drain.first_row_s, 3),
        f"{prefix}_complete": drain.complete and result.left_on_queue == 0,
        f"{prefix}_retried": result.retried,
        f"{prefix}_parked": result.parked,
    }


def _visible_target_met(args: argparse.Namespace, seen: Visibility) -> bool:
    # Met only under the target's own conditions, with every event answered and seen.
    return (seen.refused == 0 and seen.never_visible == 0 and args.rate >= TARGET_RATE
            and args.duration >= TARGET_DURATION_S and percentile_ms(seen.from_202_s, 0.99) < TARGET_P99_MS)


def _visibility(args: argparse.Namespace, followed: Followed) -> dict[str, Any]:
    seen = followed.seen
    accepted = max(seen.accepted, 1)
    return {
        "visible_p50_ms": round(percentile_ms(seen.from_202_s, 0.5), 2),
        "visible_p99_ms": round(percentile_ms(seen.from_202_s, 0.99), 2),
        "visible_max_ms": round(percentile_ms(seen.from_202_s, 1.0), 2),
        "visible_from_schedule_p99_ms": round(percentile_ms(seen.from_schedule_s, 0.99), 2),
        # Per accepted webhook, over the measured run: the API's share includes the benchmark's polls.
        "visible_cpu_ms_per_event": {name: round(cpu_s * 1000 / accepted, 3) for name, cpu_s in followed.cpu_s.items()},
        # Near 1, the tail is the services queueing for a core, not any one of them waiting.
        "visible_cpu_busy": round(followed.cpu_busy, 2),
        "offered_eps": args.rate,
        "visible_duration_s": args.duration,
        "sent": seen.sent,
        "accepted": seen.accepted,
        "refused": seen.refused,
        "never_visible": seen.never_visible,
        "polls_per_s": round(seen.polls / args.duration, 1),
        "send_lag_p99_ms": round(percentile_ms(seen.send_lags_s, 0.99), 2),
        "target_met": {"visible_p99_ms": _visible_target_met(args, seen)},
    }


def _inventory(args: argparse.Namespace, one: Drained, two: Drained) -> dict[str, Any]:
    return {
        "inventory_1w_eps": round(one.drain.rate, 1),
        "inventory_2w_eps": round(two.drain.rate, 1),
        "target_met": {"inventory_1w_eps": one.drain.complete and one.drain.rate >= TARGET_INVENTORY_EPS},
        "inventory_events": args.events,
        "inventory_skus": args.skus,
        **_drained("inventory_1w", one),
        **_drained("inventory_2w", two),
    }


def _catalog(args: argparse.Namespace, rounds: list[CatalogRound]) -> dict[str, Any]:
    """The first round's drains in full, and each round's two against one with their medians."""
    first = rounds[0]
    each = [_catalog_ratios(args, one_round) for one_round in rounds]
    return {
        "catalog_groups_per_s": round(first.one.drain.rate, 1),
        "catalog_variants_per_s": round(first.one.drain.rate * args.variants_per_group, 1),
        "catalog_2w_groups_per_s": round(first.two.drain.rate, 1),
        "catalog_groups": args.groups,
        "catalog_variants_per_group": args.variants_per_group,
        **_drained("catalog", first.one, "variant", args.variants_per_group),
        **_drained("catalog_2w", first.two, "variant", args.variants_per_group),
        **({} if first.two_at is None else
           {"catalog_2w_batch_concurrency": first.two_at[0],
            "catalog_2w_at_groups_per_s": round(first.two_at[1].drain.rate, 1),
            **_drained("catalog_2w_at", first.two_at[1], "variant", args.variants_per_group)}),
        "catalog_rounds": each,
        **ratio_medians(each),
    }


def _catalog_ratios(args: argparse.Namespace, one_round: CatalogRound) -> dict[str, float | None]:
    # Issue 19, item 3: two workers' CPU a variant against one's, start-ups taken out (≤ 1 wanted),
    # and their PostgreSQL backends' alike.
    per_group = args.variants_per_group
    one_ms, one_db_ms = _after_startup_ms(one_round.one, per_group), _db_ms(one_round.one, per_group)
    ratios = {"catalog_cpu_ratio_2w_1w": ratio(_after_startup_ms(one_round.two, per_group), one_ms),
              "catalog_db_cpu_ratio_2w_1w": ratio(_db_ms(one_round.two, per_group), one_db_ms)}
    if one_round.two_at is not None:
        ratios |= {"catalog_cpu_ratio_2w_at_1w": ratio(_after_startup_ms(one_round.two_at[1], per_group), one_ms),
                   "catalog_db_cpu_ratio_2w_at_1w": ratio(_db_ms(one_round.two_at[1], per_group), one_db_ms)}
    return ratios


def _db_ms(result: Drained, units_per_event: int) -> float:
    return result.db_cpu_s * 1000 / max(result.drain.processed * units_per_event, 1)


def figures(args: argparse.Namespace, settings: Settings,
            results: tuple[Drained | None, Drained | None, list[CatalogRound], Followed | None],
            load: LoadAverages) -> dict[str, Any]:
    """The one JSON line's fields, of the phases that ran."""
    one, two, catalog, followed = results
    parts = [
        _inventory(args, one, two) if one is not None and two is not None else {},
        _catalog(args, catalog) if catalog else {},
        _visibility(args, followed) if followed is not None else {},
    ]
    met = {name: value for part in parts for name, value in part.pop("target_met", {}).items()}
    return {
        "benchmark": "workers",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "phases": args.phases,
        **{name: value for part in parts for name, value in part.items()},
        "target_met": met,
        "target": {"inventory_1w_eps": TARGET_INVENTORY_EPS, "visible_p99_ms": TARGET_P99_MS,
                   "at_eps": TARGET_RATE, "for_s": TARGET_DURATION_S},
        "worker_batch_size": settings.worker_batch_size,
        "worker_batch_window_ms": settings.worker_batch_window_ms,
        "worker_prefetch": settings.worker_prefetch,
        **machine(load),
        "method": {
            "throughput": "queue pre-filled with confirmed publishes; clock from spawning `erp-sync worker` "
                          "(start-up included) to the last processed_events row, polled every 20 ms; CPU from "
                          "/proc of the worker processes (start-up included) and of their PostgreSQL backends",
            "visibility": f"open loop at offered_eps; after each 202 its task polls GET /api/v1/inventory/<sku> on "
                          f"keep-alive connections, pausing max({args.poll_interval_ms:g} ms, {SLOWER_AFTER:.0%} of "
                          f"the wait so far) after each answer, until erp_quantity >= the event's figure; "
                          f"latency = 202 to that answer (an upper bound)",
        },
    }
