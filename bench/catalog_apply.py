"""The catalog worker's handler in process: CPU per variant of the worker and of its PostgreSQL backend.

No RabbitMQ and no start-up: the real `erp-sync worker catalog` runner (`BatchRunner` over the
whole-batch handler, media follow-ups built) applies pre-encoded `catalog.update` bodies in
batches of `WORKER_BATCH_SIZE` on a private migrated database, as the worker would take them off
a full queue. For profiling and for comparing two versions of the handler in the same minutes;
`bench.workers --phases catalog` gives the end-to-end figure. One JSON line to stdout:

    .venv/bin/python -m bench.catalog_apply [--groups 100] [--variants-per-group 1000] [--rounds 1] [--again]

With `--again`, each round applies the groups once unmeasured, then measures the same groups sent
again as newer updates: an ERP's reload of a catalog already there, the path that updates rows
and deactivates what a group no longer lists.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from typing import Any

from sqlalchemy import Engine, event

from bench.cpu import database_cpu_s, process_cpu_s
from bench.drain import empty_tables
from bench.events import catalog_groups
from bench.report import python_yardstick_ms
from bench.stage import enter_services
from erp_sync.shared.consumer import Delivery
from erp_sync.shared.db import make_engine, make_session_factory
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from erp_sync.workers import runner as runner_module
from erp_sync.workers.runner import consumer_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100, help="catalog groups per round (100)")
    parser.add_argument("--variants-per-group", type=int, default=1_000, help="variants in each group (1000)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, each on emptied tables (1)")
    parser.add_argument("--again", action="store_true",
                        help="measure the groups' second load, as newer updates of groups already there")
    parser.add_argument("--explain", action="store_true",
                        help="print each statement's plan with timings and triggers (auto_explain, to stderr)")
    parser.add_argument("--statements", action="store_true",
                        help="also time each SQL statement text (wall time, to stderr)")
    return parser.parse_args(argv)


def _deliveries(bodies: list[bytes]) -> list[Delivery]:
    return [Delivery(delivery_tag=tag, body=body, message_id=f"bench-{tag}", content_type="application/json",
                     headers={}, redelivered=False, published_at=None)
            for tag, body in enumerate(bodies, 1)]


def run(args: argparse.Namespace) -> dict[str, object]:
    first = _deliveries(catalog_groups(args.groups, args.variants_per_group)) if args.again else []
    time.sleep(0.01)  # the second load's timestamps are later: newer updates of the same groups
    deliveries = _deliveries(catalog_groups(args.groups, args.variants_per_group))
    variants = args.groups * args.variants_per_group
    rounds: list[dict[str, float]] = []
    with ExitStack() as stack:
        services = enter_services(stack, "unused-bench-secret-0123456789")
        worker = WORKERS["catalog"]
        assert isinstance(worker, ConsumingWorker)
        config = consumer_config(services.settings, worker)
        engine = make_engine(services.settings.database_url)
        stack.callback(engine.dispose)
        runner = worker.build_runner(services.settings, make_session_factory(engine), config, threading.Event())
        timings = _time_statements(engine) if args.statements else None
        if args.explain:
            _explain(engine)
        # As `erp-sync worker` starts (a version that has it).
        getattr(runner_module, "collect_garbage_less_often", lambda: None)()
        for _ in range(args.rounds):
            empty_tables(services.engine)
            for start in range(0, len(first), config.batch_size):
                runner.run(first[start:start + config.batch_size])
            with engine.connect():  # the worker's backend up before the clock
                pass
            gc_s = _gc_time()
            cpu, db_cpu, wall = process_cpu_s(os.getpid()), database_cpu_s(services.engine), time.monotonic()
            for start in range(0, len(deliveries), config.batch_size):
                outcomes = runner.run(deliveries[start:start + config.batch_size])
                assert all(getattr(outcome, "outcome", None) == "applied" for outcome in outcomes), outcomes[:3]
            wall = time.monotonic() - wall
            cpu, db_cpu = process_cpu_s(os.getpid()) - cpu, database_cpu_s(services.engine) - db_cpu
            rounds.append({"variants_per_s": round(variants / wall), "worker_ms_per_variant": round(cpu / variants * 1e3, 4),
                           "db_ms_per_variant": round(db_cpu / variants * 1e3, 4),
                           "gc_ms_per_variant": round(gc_s[0] / variants * 1e3, 4)})
            gc.callbacks.clear()
            print(f"bench: {rounds[-1]}", file=sys.stderr)
            if timings is not None:
                for statement, (count, seconds) in sorted(timings.items(), key=lambda item: -item[1][1])[:12]:
                    print(f"bench: {seconds * 1e3 / variants:8.4f} ms/variant {count:6d}x  {statement}", file=sys.stderr)
                timings.clear()
    return {"benchmark": "catalog_apply", "groups": args.groups, "variants_per_group": args.variants_per_group,
            "again": args.again,
            "batch_size": config.batch_size, "rounds": rounds, "loadavg": os.getloadavg(),
            "python_yardstick_ms": python_yardstick_ms()}


def _explain(engine: Engine) -> None:
    """Have PostgreSQL send each statement's analysed plan (a superuser's session) as a notice, printed."""

    @event.listens_for(engine, "connect")
    def load(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.add_notice_handler(lambda notice: print(notice.message_primary, file=sys.stderr))
        with dbapi_connection.cursor() as cursor:
            cursor.execute("LOAD 'auto_explain'")
            for setting in ("log_min_duration = 0", "log_analyze = on", "log_triggers = on", "log_timing = on",
                            "log_level = notice"):
                cursor.execute(f"SET auto_explain.{setting}")
        dbapi_connection.commit()


def _gc_time() -> list[float]:
    """Seconds the garbage collector runs from now on (the list's one item, kept up to date)."""
    spent, started = [0.0], [0.0]

    def timed(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            spent[0] += time.thread_time() - started[0]

    gc.callbacks.append(timed)
    return spent


def _time_statements(engine: Engine) -> dict[str, list[float]]:
    """Wall time spent executing each statement text (its first 100 characters), and how often."""
    timings: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        timing = timings[" ".join(statement.split())[:100]]
        timing[0] += 1
        timing[1] += time.perf_counter() - conn.info.pop("bench_started")

    return timings


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(run(parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
