"""The bulk benchmark: a whole catalog pushed through the real webhook until every SKU is in the read API.

`erp-sync ingress`, `api`, `worker catalog` (--catalog-workers), `worker inventory` and `worker media`
run as processes, with the test image server (its own process) answering the images. Parallel
senders (--senders, as docs/erp-teams.md advises) post signed catalog.update events of
--variants-per-event new variants, resending on 503 after Retry-After. The clock runs from the
first post until the database counts every SKU and the read API shows the last SKU of every event
(sampling: one SKU per event through the API, all of them counted in the database). A push of
--baseline-fraction of the SKUs runs first in the same processes as the baseline (after one
unmeasured variant, so start-up counts in neither). One JSON line:

    .venv/bin/python -m bench.bulk [--skus 1000000] [--senders 4] [--catalog-workers 1]
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from bench.bulk_push import Push, Sent, catalog_push, send_all, wait_visible
from bench.cpu import database_cpu_s, tree_cpu_s
from bench.harness import benchmark_main
from bench.options import numbers_arguments
from bench.phases import progress
from bench.report import machine
from bench.servers import HOST, api_command, free_port, image_server_command, ingress_command, running
from bench.stage import enter_services
from bench.worker_procs import Workers, workers_running

TARGET_S = 180.0
COMPARED = ("visible_s", "variants_per_s", "baseline_variants_per_s")
RECONNECT_LOG, SKIPPED_LOG = "reconnecting", "no longer pending, skipped"
_CHECKS = text("""
SELECT (SELECT count(*) FROM variants WHERE sku LIKE :prefix),
       (SELECT count(*) FROM stock_changes WHERE sku LIKE :prefix),
       (SELECT count(DISTINCT sku) FROM stock_changes WHERE sku LIKE :prefix),
       (SELECT count(*) FROM media WHERE sku LIKE :prefix),
       (SELECT count(DISTINCT url) FROM media WHERE sku LIKE :prefix),
       (SELECT count(*) FROM media WHERE sku LIKE :prefix AND status = 'confirmed')
""")

OPTIONS = (
    ("--skus", 1_000_000, "SKUs pushed"),
    ("--variants-per-event", 1_000, "new variants in each catalog.update"),
    ("--images-per-variant", 1, "images of each variant, each a URL of its own"),
    ("--senders", 4, "parallel senders, each on its own connection"),
    ("--catalog-workers", 1, "erp-sync worker catalog processes (1 or 2)"),
    ("--server-ms", 20.0, "the image server's delay per image, ms"),
    ("--baseline-fraction", 0.01, "the baseline push's share of --skus"),
    ("--timeout", 1_800.0, "give the push up after, s"),
)


parse_args = numbers_arguments('Push a whole catalog through the webhook until all of it is visible.', OPTIONS)


class _Processes:
    """The run's processes by kind, for CPU readings and a liveness check."""

    def __init__(self, servers: dict[str, int], workers: list[Workers], engine: Engine) -> None:
        self.servers, self.workers, self.engine = servers, workers, engine

    def cpu_s(self) -> dict[str, float]:
        readings = {name: tree_cpu_s(pid) for name, pid in self.servers.items()}
        readings |= {f"worker_{workers.name}": workers.cpu_s() for workers in self.workers}
        return readings | {"database": database_cpu_s(self.engine)}

    def check_alive(self) -> None:
        for workers in self.workers:
            workers.check_alive()

    def in_logs(self, fragment: str) -> dict[str, int]:
        return {workers.name: workers.count_in_logs(fragment) for workers in self.workers}


def _push(push: Push, processes: _Processes, ports: tuple[int, int], secret: str, args: argparse.Namespace
          ) -> dict[str, Any]:
    port, api_port = ports
    sending: list[Sent] = []
    before, started = processes.cpu_s(), time.monotonic()
    sender = threading.Thread(target=lambda: sending.append(send_all(port, push.bodies, secret, args.senders)))
    sender.start()
    try:
        visible_s = wait_visible(processes.engine, api_port, secret, push, started, args.timeout,
                                 processes.check_alive)
    finally:
        sender.join()
    if not sending:
        raise RuntimeError("the senders failed (see above)")
    spent = {name: value - before[name] for name, value in processes.cpu_s().items()}
    sent = sending[0]
    progress(f"{push.skus} SKUs visible {visible_s:.1f} s after the first post ({push.skus / visible_s:.0f}/s); "
             f"{sent.accepted} events accepted, {sent.retried_503} 503s retried")
    return {"skus": push.skus, "events": len(push.bodies), "visible_s": round(visible_s, 2),
            "variants_per_s": round(push.skus / visible_s), "accepted": sent.accepted,
            "retried_503": sent.retried_503, "resent_after_error": sent.resent_after_error,
            "cpu_ms_per_variant": {name: round(cpu * 1000 / push.skus, 4) for name, cpu in spent.items()}}


def _checks(engine: Engine, push: Push, images_per_variant: int) -> dict[str, int]:
    with engine.connect() as connection:
        variants, changes, changed_skus, media, urls, confirmed = connection.execute(
            _CHECKS, {"prefix": f"{push.prefix}%"}).one()
    images = push.skus * images_per_variant
    return {"lost": push.skus - variants, "doubled_stock_changes": changes - changed_skus,
            "stock_changes_missing": push.skus - changed_skus, "media_rows": media, "media_rows_expected": images,
            "doubled_media_rows": media - urls, "media_confirmed_at_end": confirmed}


def run(args: argparse.Namespace) -> dict[str, Any]:
    secret, load_before = secrets.token_hex(24), os.getloadavg()
    ports = port, api_port = free_port(), free_port()
    image_port = free_port()
    image_base = f"http://{HOST}:{image_port}/cdn.png?ms={args.server_ms:g}"
    baseline_skus = max(args.variants_per_event, round(args.skus * args.baseline_fraction))
    # One variant first, unmeasured: every process connected and warm before the baseline's clock starts.
    pushes = [catalog_push("BULKW-", 1, args.variants_per_event, image_base, args.images_per_variant),
              catalog_push("BULKB-", baseline_skus, args.variants_per_event, image_base, args.images_per_variant),
              catalog_push("BULK-", args.skus, args.variants_per_event, image_base, args.images_per_variant)]
    progress(f"{sum(len(push.bodies) for push in pushes)} events built")
    with ExitStack() as stack:
        services = enter_services(stack, secret)
        work_dir, engine = services.work_dir, services.engine
        env = services.env | {"MEDIA_ALLOW_PRIVATE_NETWORKS": "true"}
        image_server = stack.enter_context(running("image-server", image_server_command(image_port), env,
                                                   image_port, work_dir))
        ingress = stack.enter_context(running("ingress", ingress_command(port), env, port, work_dir))
        api = stack.enter_context(running("api", api_command(api_port), env, api_port, work_dir))
        workers = [stack.enter_context(workers_running(name, count, env, work_dir, "bulk"))
                   for name, count in (("catalog", args.catalog_workers), ("inventory", 1), ("media", 1))]
        processes = _Processes({"ingress": ingress.pid, "api": api.pid, "image_server": image_server.pid}, workers,
                               engine)
        _, baseline, measured = (_push(push, processes, ports, secret, args) for push in pushes)
        checks = _checks(engine, pushes[-1], args.images_per_variant)
        reconnects, skipped = processes.in_logs(RECONNECT_LOG), processes.in_logs(SKIPPED_LOG)
        processes.check_alive()
    return {
        "benchmark": "bulk", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "visible_s": measured["visible_s"], "variants_per_s": measured["variants_per_s"],
        "baseline_variants_per_s": baseline["variants_per_s"],
        "target_met": {"visible_s": measured["visible_s"] < TARGET_S * args.skus / 1_000_000,
                       "lost_0": checks["lost"] == 0,
                       "doubled_0": checks["doubled_stock_changes"] == 0 and checks["doubled_media_rows"] == 0,
                       "reconnects_0": sum(reconnects.values()) == 0},
        "target": {"visible_s": f"< {TARGET_S:g} s for 1,000,000 SKUs (scaled to --skus)"},
        "checks": checks | {"reconnects": reconnects, "media_messages_skipped_as_not_pending": skipped["media"]},
        "measured": measured, "baseline": baseline,
        "options": {key: value for key, value in vars(args).items() if key != "baseline"},
        "machine": machine((load_before, os.getloadavg())),
        "method": "time from the first post until the database counts every SKU and the read API shows the last SKU "
                  "of every event (sampled: one per event); baseline: --baseline-fraction of the load first, in the "
                  "same processes; CPU from /proc per variant of each process kind and of the database's backends",
    }


main = benchmark_main(parse_args, run, COMPARED)


if __name__ == "__main__":
    sys.exit(main())
