"""The workers benchmark's one JSON line: figures, targets and how each was measured."""
from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from bench.events import VARIANTS_PER_GROUP
from bench.report import LoadAverages, machine
from bench.visibility import SLOWER_AFTER, Visibility, percentile_ms
from bench.worker_phases import Drained
from erp_sync.shared.settings import Settings

TARGET_P99_MS = 100.0
TARGET_RATE = 500.0
TARGET_DURATION_S = 60.0
TARGET_INVENTORY_EPS = 4_000.0


def _drained(prefix: str, result: Drained) -> dict[str, Any]:
    drain = result.drain
    return {
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


def _visibility(args: argparse.Namespace, seen: Visibility) -> dict[str, Any]:
    return {
        "visible_p50_ms": round(percentile_ms(seen.from_202_s, 0.5), 2),
        "visible_p99_ms": round(percentile_ms(seen.from_202_s, 0.99), 2),
        "visible_max_ms": round(percentile_ms(seen.from_202_s, 1.0), 2),
        "visible_from_schedule_p99_ms": round(percentile_ms(seen.from_schedule_s, 0.99), 2),
        "offered_eps": args.rate,
        "visible_duration_s": args.duration,
        "sent": seen.sent,
        "accepted": seen.accepted,
        "refused": seen.refused,
        "never_visible": seen.never_visible,
        "polls_per_s": round(seen.polls / args.duration, 1),
        "send_lag_p99_ms": round(percentile_ms(seen.send_lags_s, 0.99), 2),
    }


def figures(args: argparse.Namespace, settings: Settings, results: tuple[Drained, Drained, Drained, Visibility],
            load: LoadAverages) -> dict[str, Any]:
    """The one JSON line's fields."""
    one, two, catalog, seen = results
    one_eps = one.drain.rate
    return {
        "benchmark": "workers",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "inventory_1w_eps": round(one_eps, 1),
        "inventory_2w_eps": round(two.drain.rate, 1),
        "catalog_groups_per_s": round(catalog.drain.rate, 1),
        **_visibility(args, seen),
        "target_met": {
            "inventory_1w_eps": one.drain.complete and one_eps >= TARGET_INVENTORY_EPS,
            "visible_p99_ms": _visible_target_met(args, seen),
        },
        "target": {"inventory_1w_eps": TARGET_INVENTORY_EPS, "visible_p99_ms": TARGET_P99_MS,
                   "at_eps": TARGET_RATE, "for_s": TARGET_DURATION_S},
        "inventory_events": args.events,
        "inventory_skus": args.skus,
        **_drained("inventory_1w", one),
        **_drained("inventory_2w", two),
        "catalog_groups": args.groups,
        "catalog_variants_per_group": VARIANTS_PER_GROUP,
        **_drained("catalog", catalog),
        "worker_batch_size": settings.worker_batch_size,
        "worker_batch_window_ms": settings.worker_batch_window_ms,
        "worker_prefetch": settings.worker_prefetch,
        **machine(load),
        "method": {
            "throughput": "queue pre-filled with confirmed publishes; clock from spawning `erp-sync worker` "
                          "(start-up included) to the last processed_events row, polled every 20 ms",
            "visibility": f"open loop at offered_eps; after each 202 its task polls GET /api/v1/inventory/<sku> on "
                          f"keep-alive connections, pausing max({args.poll_interval_ms:g} ms, {SLOWER_AFTER:.0%} of "
                          f"the wait so far) after each answer, until erp_quantity >= the event's figure; "
                          f"latency = 202 to that answer (an upper bound)",
        },
    }
