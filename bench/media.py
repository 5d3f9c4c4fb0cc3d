"""The media benchmark: images a second through the media worker's handler from a local image server.

Rows for --images distinct images are written, then the handler (`erp-sync worker media`'s, run in
this process through the consumer's `BatchRunner`, without RabbitMQ) confirms them in messages of
--per-message images, once downloading one image at a time (the baseline) and once with
MEDIA_CONCURRENCY. The image server (tests/support/image_server.py, on 127.0.0.1, a process of its
own) answers each image after --server-ms, as one some way off would. CPU per image is this
process's (the worker's handler, from /proc) and, apart, its PostgreSQL backend's and the image
server's. One JSON line goes to stdout:

    .venv/bin/python -m bench.media [--images 2000] [--concurrency 8] [--server-ms 20]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bench.drain import bench_engine
from bench.cpu import database_cpu_s, process_cpu_s
from bench.harness import benchmark_main
from bench.options import numbers_arguments
from bench.report import machine
from bench.sandbox import private_database
from bench.servers import HOST, free_port, image_server_command, running
from erp_sync.shared.batch_runner import BatchRunner
from erp_sync.shared.consumer import ConsumerConfig, Delivery, Done
from erp_sync.shared.db import make_engine, make_session_factory
from erp_sync.shared.internal_messages import MediaBatch, MediaDownload
from erp_sync.shared.models import MediaStatus
from erp_sync.shared.models.catalog import Media, ProductGroup, Variant
from erp_sync.shared.settings import load_settings
from erp_sync.workers.media import build_handler

TARGET_IMAGES_PER_S = 200.0
COMPARED = ("images_per_s", "baseline_images_per_s", "cpu_ms_per_image")
SKU = "BENCH-MEDIA"

OPTIONS = (
    ("--images", 2_000, "distinct images per run"),
    ("--per-message", 100, "images per media message"),
    ("--concurrency", 8, "MEDIA_CONCURRENCY of the measured run"),
    ("--server-ms", 20.0, "the image server's delay per image, ms"),
)


parse_args = numbers_arguments("Benchmark the media worker's downloads.", OPTIONS)


def _add_rows(engine: Engine, base: str, count: int, server_ms: float) -> list[MediaDownload]:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.execute(text("TRUNCATE media, variants, product_groups CASCADE"))
        session.add(ProductGroup(product_group_id="BENCH-PG", group_name="bench", erp_updated_at=now))
        session.add(Variant(sku=SKU, product_group_id="BENCH-PG", display_name="bench", price=Decimal("1.00"),
                            erp_updated_at=now))
        rows = [Media(sku=SKU, position=n, url=f"{base}/cdn.png?ms={server_ms:g}&image={n}") for n in range(count)]
        session.add_all(rows)
        session.flush()
        return [MediaDownload(media_id=row.id, sku=SKU, url=row.url) for row in rows]


def _run(engine: Engine, base: str, args: argparse.Namespace, concurrency: int, server_pid: int) -> dict[str, float]:
    """Confirm fresh rows with `concurrency` downloads at a time: images/s and CPU per image of each process."""
    downloads = _add_rows(engine, base, args.images, args.server_ms)
    settings = load_settings(media_allow_private_networks=True, media_concurrency=concurrency)
    runner = BatchRunner(build_handler(settings), make_session_factory(engine),
                         ConsumerConfig("amqp://unused", settings.retry_delays_ms, settings.max_delivery_attempts))
    messages = [MediaBatch(images=tuple(downloads[i:i + args.per_message]))
                for i in range(0, len(downloads), args.per_message)]
    watcher = bench_engine(engine.url.render_as_string(hide_password=False))  # not one of the handler's connections
    pids = {"worker": lambda: process_cpu_s(os.getpid()), "database": lambda: database_cpu_s(watcher),
            "image_server": lambda: process_cpu_s(server_pid)}
    before, started = {name: cpu() for name, cpu in pids.items()}, time.perf_counter()
    for tag, message in enumerate(messages):
        outgoing = message.to_message()
        [outcome] = runner.run([Delivery(tag, outgoing.body, outgoing.message_id, "application/json")])
        if outcome != Done():
            raise RuntimeError(f"message {outgoing.message_id} was not done: {outcome}")
    elapsed = time.perf_counter() - started
    spent = {name: cpu() - before[name] for name, cpu in pids.items()}
    with Session(engine) as session:
        confirmed = session.scalar(select(func.count()).select_from(Media).where(Media.status == MediaStatus.CONFIRMED))
    if confirmed != args.images:
        raise RuntimeError(f"{confirmed} of {args.images} images confirmed")
    return {"images_per_s": args.images / elapsed} | {
        f"{name}_cpu_ms_per_image": spent_s * 1000 / args.images for name, spent_s in spent.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    port, load_before = free_port(), os.getloadavg()
    with (tempfile.TemporaryDirectory(prefix="erp-sync-bench-") as work_dir,
          private_database(load_settings().database_url) as url,
          running("image-server", image_server_command(port), dict(os.environ), port, Path(work_dir)) as server):
        engine = make_engine(url)
        try:
            baseline = _run(engine, f"http://{HOST}:{port}", args, 1, server.pid)
            measured = _run(engine, f"http://{HOST}:{port}", args, args.concurrency, server.pid)
        finally:
            engine.dispose()
    return {
        "benchmark": "media",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "images_per_s": round(measured["images_per_s"], 1),
        "cpu_ms_per_image": round(measured["worker_cpu_ms_per_image"], 3),
        "db_cpu_ms_per_image": round(measured["database_cpu_ms_per_image"], 3),
        "image_server_cpu_ms_per_image": round(measured["image_server_cpu_ms_per_image"], 3),
        "baseline_images_per_s": round(baseline["images_per_s"], 1),
        "baseline_cpu_ms_per_image": round(baseline["worker_cpu_ms_per_image"], 3),
        "baseline_db_cpu_ms_per_image": round(baseline["database_cpu_ms_per_image"], 3),
        "speedup": round(measured["images_per_s"] / baseline["images_per_s"], 2),
        "target_met": {"images_per_s": measured["images_per_s"] >= TARGET_IMAGES_PER_S},
        "target": {"images_per_s": TARGET_IMAGES_PER_S},
        "images": args.images, "per_message": args.per_message, "concurrency": args.concurrency,
        "server_ms": args.server_ms,
        "method": "the media worker's handler in this process (BatchRunner, one message at a time, no RabbitMQ); "
                  "baseline: MEDIA_CONCURRENCY=1 in the same run; CPU from /proc: cpu_ms_per_image is this "
                  "process's (the worker's), db_ its PostgreSQL backends', the image server a process of its own",
        "machine": machine((load_before, os.getloadavg())),
    }


main = benchmark_main(parse_args, run, COMPARED)


if __name__ == "__main__":
    sys.exit(main())
