"""The reconciliation benchmark: a sweep of N SKUs with 1% drift against the sandbox ERP, per snapshot form.

The sandbox ERP (seeded with N SKUs) serves from this process; commerce's stock_levels get the same
SKUs by COPY, every 100th one off by one. Each sweep is `erp-sync reconcile --now` in a process of its
own: its time is the run's recorded duration, its peak memory the process's maximum resident set
as the kernel reports it when the process is reaped. One JSON line goes to stdout, progress to stderr:

    .venv/bin/python -m bench.reconcile [--skus 1000000] [--forms json,csv,url] [--baseline FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from werkzeug.serving import make_server

from bench.peak_memory import run_measured
from bench.report import beside_baseline, emit, load_baseline, ratio
from bench.sandbox import private_database
from bench.servers import erp_sync
from erp_sync.cli.exits import EXIT_HELD
from erp_sync.shared.pg import conninfo
from erp_sync.shared.settings import load_settings

TOKEN = "bench-reconcile-token"
TARGET_S, TARGET_MB = 10.0, 64.0
DRIFT_EVERY = 100
SWEEP_TIMEOUT_S = 600

FORMS = ("json", "csv", "url")
COMPARED = (*(f"{form}_{key}" for form in FORMS for key in ("s", "peak_mb")), "show_held_s", "show_held_peak_mb",
            "approve_held_s")

def progress(message: str) -> None:
    print(f"[bench reconcile] {message}", file=sys.stderr, flush=True)


def seed_commerce(database_url: str, store: Any, drift_every: int = DRIFT_EVERY) -> int:
    """stock_levels as the ERP has them, every `drift_every`-th SKU one more; how many differ."""
    from erp_sync.sandbox_erp.catalog import stock_chunks

    drifted = 0
    with psycopg.connect(conninfo(database_url)) as conn, conn.cursor() as cursor:
        cursor.execute("TRUNCATE stock_levels, stock_changes, reconciliation_corrections, reconciliation_held_changes, reconciliation_runs")
        with cursor.copy("COPY stock_levels (sku, erp_quantity, erp_as_of) FROM STDIN") as copy:
            number = 0
            for rows in stock_chunks(store, 20_000):
                for sku, qty in rows:
                    number += 1
                    off = number % drift_every == 0
                    drifted += off
                    copy.write_row((sku, qty + 1 if off else qty, "2024-01-01T00:00:00Z"))
        cursor.execute("ANALYZE stock_levels")
    return drifted


def sweep_in_subprocess(database_url: str, erp_url: str) -> dict[str, Any]:
    """`erp-sync reconcile --now`'s summary, with the sweeping process's peak memory in MB as "peak_mb"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERP_", "RECONCILE_"))}
    env |= {"DATABASE_URL": database_url, "ERP_BASE_URL": erp_url, "ERP_API_TOKEN": TOKEN}
    done = run_measured(erp_sync("reconcile", "--now"), env, SWEEP_TIMEOUT_S, succeeded=(0, EXIT_HELD))
    figures: dict[str, Any] = json.loads(done.stdout or "")
    return figures | {"peak_mb": done.peak_mb}


def printed_in_subprocess(database_url: str, *args: str) -> dict[str, float]:
    """`erp-sync reconcile <args>` printed to nowhere: its seconds and peak memory in MB."""
    done = run_measured(erp_sync("reconcile", *args), os.environ | {"DATABASE_URL": database_url}, SWEEP_TIMEOUT_S,
                        keep_stdout=False)
    return {"s": done.seconds, "peak_mb": done.peak_mb}


def held_run_shown(database_url: str, erp_url: str, store: Any) -> dict[str, Any]:
    """A sweep held with a change for every SKU (a broken export), then its `--show`, beside `--history`'s,
    then its `--approve` (every change written)."""
    seed_commerce(database_url, store, drift_every=1)
    held = sweep_in_subprocess(database_url, erp_url)
    if held["status"] != "held":
        raise RuntimeError(f"a sweep changing every SKU was not held: {held}")
    with psycopg.connect(conninfo(database_url)) as conn:
        changes = conn.execute("SELECT count(*) FROM reconciliation_held_changes WHERE run_id = %s",
                               (held["run_id"],)).fetchone()
    shown = printed_in_subprocess(database_url, "--show", str(held["run_id"]))
    listed = printed_in_subprocess(database_url, "--history")
    approved = printed_in_subprocess(database_url, "--approve", str(held["run_id"]))
    with psycopg.connect(conninfo(database_url)) as conn:
        corrected = conn.execute("SELECT count(*) FROM reconciliation_corrections WHERE run_id = %s",
                                 (held["run_id"],)).fetchone()
    if not changes or not corrected or corrected[0] != changes[0]:
        raise RuntimeError(f"the approval corrected {corrected} of {changes} held changes")
    return {"held_changes": changes[0], "show_held_s": shown["s"],
            "show_held_peak_mb": shown["peak_mb"], "history_peak_mb": listed["peak_mb"],
            "show_held_peak_ratio_to_history": ratio(shown["peak_mb"], listed["peak_mb"]),
            "approve_held_s": approved["s"], "approve_held_peak_mb": approved["peak_mb"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ijson

    from erp_sync.sandbox_erp import SandboxConfig, create_app, shutdown

    base = load_settings()
    figures: dict[str, Any] = {"bench": "reconcile", "date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "skus": args.skus, "drift_share": 1 / DRIFT_EVERY, "ijson_backend": ijson.backend,
                               "target_s": TARGET_S, "target_mb": TARGET_MB}
    with tempfile.TemporaryDirectory(prefix="erp-sync-bench-") as work, private_database(base.database_url) as db:
        progress(f"seeding the sandbox ERP with {args.skus} SKUs")
        started = time.perf_counter()
        config = SandboxConfig(api_token=TOKEN, database=str(Path(work) / "erp.sqlite"), generate_groups=args.skus,
                               variants_per_group=1, export_dir=Path(work))
        app = create_app(config)
        store = app.extensions["sandbox_erp.store"]
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        erp_url = f"http://127.0.0.1:{server.server_port}"
        progress(f"sandbox ready in {time.perf_counter() - started:.1f} s at {erp_url}")
        try:
            for form in args.forms:
                drifted = seed_commerce(db, store)
                app.extensions["sandbox_erp.config"] = dataclasses.replace(config, snapshot_format=form)
                progress(f"{form}: commerce seeded ({drifted} drifted), sweeping")
                result = sweep_in_subprocess(db, erp_url)
                progress(f"{form}: {result['status']} in {result['duration_s']:.2f} s, "
                         f"peak {result['peak_mb']:.1f} MB")
                if result["status"] != "succeeded" or result["corrected"] != drifted:
                    raise RuntimeError(f"{form}: unexpected sweep result {result}")
                figures |= {f"{form}_s": round(result["duration_s"], 2), f"{form}_peak_mb": round(result["peak_mb"], 1),
                            f"{form}_checked": result["checked"], f"{form}_corrected": result["corrected"]}
            if args.held:
                app.extensions["sandbox_erp.config"] = dataclasses.replace(config, snapshot_format="json")
                progress("held: every SKU drifted, sweeping, then reconcile --show of the held run")
                figures |= held_run_shown(db, erp_url, store)
        finally:
            server.shutdown()
            shutdown(app)
    figures["ok"] = all(figures.get(f"{f}_s", 1e9) < TARGET_S and figures.get(f"{f}_peak_mb", 1e9) < TARGET_MB
                        for f in args.forms)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the reconciliation sweep.")
    parser.add_argument("--skus", type=int, default=1_000_000, help="SKUs on both sides (1000000)")
    parser.add_argument("--forms", type=lambda s: s.split(","), default=list(FORMS), help="json,csv,url")
    parser.add_argument("--held", action=argparse.BooleanOptionalAction, default=True,
                        help="also a sweep held with every SKU changed, `reconcile --show` of it and its approval (on)")
    parser.add_argument("--baseline", type=Path, help="a saved earlier JSON line to compare against")
    args = parser.parse_args(argv)
    figures = run(args)
    if args.baseline:
        figures |= beside_baseline(figures, load_baseline(args.baseline), COMPARED)
    emit(figures)
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
