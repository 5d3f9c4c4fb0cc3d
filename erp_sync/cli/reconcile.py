"""`erp-sync reconcile`: one sweep now (or its dry run), a decision on a held sweep, or the record of past sweeps."""
from __future__ import annotations

import argparse
import csv
import dataclasses
import errno
import json
import os
import sys
from collections.abc import Callable
from typing import TextIO

from erp_sync.shared.arguments import positive_int
from erp_sync.cli.exits import EXIT_CONFIGURATION, EXIT_FAILURE, EXIT_HELD, EXIT_OK, EXIT_SKIPPED
from erp_sync.shared.settings import Settings

CHANGE_FIELDS = ("sku", "commerce_qty", "erp_qty", "new_qty", "held")
HISTORY_RUNS = 20


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reconcile = commands.add_parser("reconcile", help="compare the ERP's stock snapshot with ours and correct drift")
    action = reconcile.add_mutually_exclusive_group(required=True)
    action.add_argument("--now", action="store_true", help="run one sweep now and print its JSON summary")
    action.add_argument("--dry-run", action="store_true",
                        help="compare as a sweep would, write nothing; print the summary and every change")
    action.add_argument("--approve", type=positive_int, metavar="RUN", help="apply a held run's changes")
    action.add_argument("--reject", type=positive_int, metavar="RUN", help="close a held run without applying it")
    action.add_argument("--history", action="store_true",
                        help="print the stock holds (open, oldest, ended by cause) and the latest runs as JSON")
    action.add_argument("--show", type=positive_int, metavar="RUN", help="print one run and its corrections as JSON")
    reconcile.add_argument("--limit", type=positive_int, help=f"runs listed by --history ({HISTORY_RUNS})")
    reconcile.add_argument("--output", metavar="FILE",
                           help="--dry-run: write the changes to FILE (CSV when it ends in .csv, else JSON lines)")
    reconcile.set_defaults(run=run_reconcile, needs_current_schema=True)


def run_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    # Left unsaid, an operator would look for a file that `--now` never writes, or wonder why
    # `--show` printed every change.
    if args.output is not None and not args.dry_run:
        print("erp-sync: --output is for --dry-run only", file=sys.stderr)
        return EXIT_CONFIGURATION
    if args.limit is not None and not args.history:
        print("erp-sync: --limit is for --history only", file=sys.stderr)
        return EXIT_CONFIGURATION
    if args.dry_run:
        return _dry_run(settings, args.output)
    if args.approve is not None or args.reject is not None:
        return _decide(settings, args)
    if not args.now:
        return _print_history(settings, args)
    from erp_sync.workers.reconcile import run_sweep

    summary = run_sweep(settings)
    print(json.dumps(summary.as_dict(), indent=2))
    return _exit_of(summary.status)


def _exit_of(status: str) -> int:
    return {"succeeded": EXIT_OK, "skipped": EXIT_SKIPPED, "held": EXIT_HELD}.get(status, EXIT_FAILURE)


def _dry_run(settings: Settings, output: str | None) -> int:
    from erp_sync.workers.reconcile import run_sweep

    try:
        # Opened before the sweep: a path that cannot be written is refused before any work.
        stream, partial = (sys.stdout, None) if output is None else _partial_file(output)
    except OSError as exc:
        print(f"erp-sync: --output {output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIGURATION
    try:
        write = _change_writer(stream, as_csv=output is not None and output.endswith(".csv"))
        summary = run_sweep(settings, dry_run=True, on_change=lambda change: write(dataclasses.asdict(change)))
    except BaseException:
        if partial is not None:
            stream.close()
            os.unlink(partial)
        raise
    if partial is not None and output is not None:
        stream.close()
        os.replace(partial, output)
    print(json.dumps(summary.as_dict()), flush=True)  # one line, last: after the changes when they go to stdout
    return _exit_of(summary.status)


def _partial_file(output: str) -> tuple[TextIO, str]:
    """A file beside `output` to write the changes to, and its path: renamed over `output` once the
    dry run has ended, so one that fails leaves the previous run's file as it was."""
    if os.path.isdir(output):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), output)
    partial = os.path.join(os.path.dirname(output), f".{os.path.basename(output)}.partial")
    return open(partial, "w", newline="", encoding="utf-8"), partial  # noqa: SIM115


def _change_writer(stream: TextIO, *, as_csv: bool) -> Callable[[dict[str, object]], None]:
    """How each change is written to stream: as CSV (with its header first) or as JSON lines."""
    if as_csv:
        writer = csv.DictWriter(stream, fieldnames=CHANGE_FIELDS)
        writer.writeheader()
        return writer.writerow
    return lambda change: print(json.dumps(change), file=stream)


def _decide(settings: Settings, args: argparse.Namespace) -> int:
    from erp_sync.workers.reconcile_decide import RunNotHeld, approve_run, reject_run

    try:
        summary = approve_run(settings, args.approve) if args.approve is not None else reject_run(settings, args.reject)
    except RunNotHeld as exc:
        print(f"erp-sync: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(summary.as_dict(), indent=2))
    return EXIT_OK


def _print_history(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from erp_sync.cli.json_stream import print_json
    from erp_sync.shared.db import make_engine, make_session_factory, translate_db_error
    from erp_sync.workers.reconcile_history import show, stock_truth

    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            if args.show is not None:
                run = show(session, args.show)
                if run is None:
                    print(f"erp-sync: no reconciliation run {args.show}", file=sys.stderr)
                    return EXIT_FAILURE
                print_json(run)
            else:
                print(json.dumps(stock_truth(session, args.limit or HISTORY_RUNS), indent=2))
        return EXIT_OK
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc  # main prints it as one line
    finally:
        engine.dispose()
