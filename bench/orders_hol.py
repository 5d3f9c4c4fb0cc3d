"""Head-of-line blocking in the orders push: how soon another order reaches the ERP while one order's import hangs.

Runs the sandbox ERP, `erp-sync migrate` on a private database and vhost, and one `erp-sync worker
orders` process. Each round times an order from its publish to its arrival in the ERP (the sandbox's
admin API, polled every --poll-ms), twice: with the ERP answering at once (the baseline), and while
another order's import hangs at the ERP (`fault slow --only-sku`), that order published first and
already held when the timed one is published. The hanging order is then let go; at the end every
order must be in the ERP exactly once. One JSON line goes to stdout, progress to stderr:

    .venv/bin/python -m bench.orders_hol [--rounds 20] [--poll-ms 2] [--baseline FILE]
"""
from __future__ import annotations

import argparse
import os
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from bench.harness import SERVICE_FAILURES, benchmark_main
from bench.hol_erp import ErpWatch
from bench.order_erp import order_stage
from bench.phases import progress
from bench.report import machine
from bench.visibility import percentile_ms
from bench.worker_procs import workers_running
from erp_sync.shared.orders import LineItem, OrderPlaced, publish_order
from erp_sync.shared.publisher import ConfirmingPublisher

COMPARED = ("while_one_hangs_p50_ms", "while_one_hangs_max_ms", "no_hang_p50_ms")
TARGET_MS = 100.0
HANG_MS = 120_000  # far longer than a round: the hanging order is let go by switching the fault off
READ_TIMEOUT_S = "60"  # the worker waits for the hanging import rather than retrying it


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time an order to the ERP while another order's import hangs.")
    parser.add_argument("--rounds", type=int, default=20, help="timed orders with a hang and without (20)")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="how often the ERP's orders are read (2 ms)")
    parser.add_argument("--timeout", type=float, default=60.0, help="give a wait up after (60 s)")
    parser.add_argument("--baseline", type=Path, help="a saved earlier JSON line to compare against")
    return parser.parse_args(argv)


def one_line(order_id: str, sku: str) -> OrderPlaced:
    return OrderPlaced(order_id=order_id, order_date=datetime.now(UTC), customer_ref="bench-hol",
                       line_items=[LineItem(sku=sku, quantity=1, unit_price=Decimal("10.00"))])


class Rounds:
    """The timed orders against one running worker: publish, then watch the ERP take them."""

    def __init__(self, args: argparse.Namespace, erp: ErpWatch, publisher: ConfirmingPublisher,
                 skus: list[str], alive: Any) -> None:
        self.args, self.erp, self.publisher, self.alive = args, erp, publisher, alive
        self.hang_sku, self.sku = skus[0], skus[1]
        self.still_held = 0  # rounds in which the hanging import was still held when the timed order arrived

    def _until(self, check: Any, what: str) -> float:
        return self.erp.wait(check, what, self.args.timeout, self.args.poll_ms / 1000, self.alive)

    def to_erp_s(self, order_id: str) -> float:
        """Publish an order; seconds until the ERP has taken it."""
        order = one_line(order_id, self.sku)
        published = time.monotonic()
        publish_order(self.publisher, order)
        return self._until(lambda: order_id in self.erp.taken(), f"{order_id} in the ERP") - published

    def while_one_hangs_s(self, n: int) -> float:
        """An order's publish-to-ERP time while an order published before it hangs at the ERP."""
        hanging = f"HOL-HANGS-{n:04d}"
        self.erp.fault("slow", HANG_MS, [self.hang_sku])
        publish_order(self.publisher, one_line(hanging, self.hang_sku))
        self._until(lambda: self.erp.held() == 1, f"{hanging} held at the ERP")
        elapsed = self.to_erp_s(f"HOL-GOES-{n:04d}")
        self.still_held += self.erp.held() == 1 and hanging not in self.erp.taken()
        self.erp.fault("none")  # lets the hanging import go
        self._until(lambda: hanging in self.erp.taken(), f"{hanging} in the ERP")
        return elapsed


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up the ERP, vhost, database and worker; time the rounds; tear everything down; the figures."""
    load_before = os.getloadavg()
    with ExitStack() as stack:
        stage = order_stage(stack, 2, 1_000_000, {"ERP_READ_TIMEOUT_S": READ_TIMEOUT_S})
        settings, env, work_dir, skus = stage.settings, stage.env, stage.work_dir, stage.skus
        erp = ErpWatch(stage.erp_url, stage.token)
        stack.callback(erp.close)
        publisher = ConfirmingPublisher(stage.amqp_url)
        stack.callback(publisher.close)
        workers = stack.enter_context(workers_running("orders", 1, env, work_dir, "hol"))
        rounds = Rounds(args, erp, publisher, skus, workers.check_alive)
        rounds.to_erp_s("HOL-WARM-0")  # the worker connected and warm before any clock that counts
        no_hang, hanging = [], []
        for n in range(args.rounds):
            no_hang.append(rounds.to_erp_s(f"HOL-BASE-{n:04d}"))
            hanging.append(rounds.while_one_hangs_s(n))
        taken = erp.taken()
        progress(f"{args.rounds} rounds: while one hangs p50 {percentile_ms(hanging, 0.5):.1f} ms, "
                 f"no hang p50 {percentile_ms(no_hang, 0.5):.1f} ms")
    return figures(args, settings.order_push_concurrency, (no_hang, hanging), rounds.still_held, taken,
                   (load_before, os.getloadavg()))


def figures(args: argparse.Namespace, concurrency: int, times: tuple[list[float], list[float]], still_held: int,
            taken: Any, load: Any) -> dict[str, Any]:
    """The one JSON line's fields."""
    no_hang, hanging = times
    expected = 1 + 3 * args.rounds
    hang_max = round(percentile_ms(hanging, 1.0), 1)
    return {
        "benchmark": "orders_hol",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "while_one_hangs_p50_ms": round(percentile_ms(hanging, 0.5), 1),
        "while_one_hangs_max_ms": hang_max,
        "no_hang_p50_ms": round(percentile_ms(no_hang, 0.5), 1),
        "no_hang_max_ms": round(percentile_ms(no_hang, 1.0), 1),
        "ratio_p50": round(percentile_ms(hanging, 0.5) / max(percentile_ms(no_hang, 0.5), 1e-9), 2),
        "rounds": args.rounds,
        "hanging_still_held_at_arrival": still_held,
        # Every order of the run (the warm-up, and per round the baseline's, the hanging one, the timed one) once.
        "orders_expected": expected, "orders_in_erp": len(taken),
        "orders_in_erp_more_than_once": sum(1 for count in taken.values() if count > 1),
        "target_ms": TARGET_MS,
        "target_met": hang_max <= TARGET_MS and still_held == args.rounds and len(taken) == expected
                      and all(count == 1 for count in taken.values()),
        "order_push_concurrency": concurrency,
        **machine(load),
        "method": f"one `erp-sync worker orders` process; sandbox ERP (werkzeug, in-memory) as a process; each "
                  f"round: an order published and timed to its arrival in the ERP's /admin/orders (polled every "
                  f"{args.poll_ms:g} ms; monotonic clock from before the confirmed publish), then the same with "
                  f"another order's import held by `fault slow --only-sku` (published first, held before the "
                  f"timed publish, let go after)",
    }


main = benchmark_main(parse_args, run, COMPARED, SERVICE_FAILURES + (requests.RequestException,))


if __name__ == "__main__":
    raise SystemExit(main())
