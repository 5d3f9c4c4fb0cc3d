"""`erp-sync reconcile`: one sweep now, or the record of past sweeps."""
from __future__ import annotations

import argparse
import json
import sys

from erp_sync.cli.exits import EXIT_FAILURE, EXIT_OK, EXIT_SKIPPED
from erp_sync.shared.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reconcile = commands.add_parser("reconcile", help="compare the ERP's stock snapshot with ours and correct drift")
    action = reconcile.add_mutually_exclusive_group(required=True)
    action.add_argument("--now", action="store_true", help="run one sweep now and print its JSON summary")
    action.add_argument("--history", action="store_true", help="print the latest runs as JSON")
    action.add_argument("--show", type=int, metavar="RUN", help="print one run and its corrections as JSON")
    reconcile.add_argument("--limit", type=int, default=20, help="runs listed by --history (20)")
    reconcile.set_defaults(run=run_reconcile)


def run_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    if not args.now:
        return _print_history(settings, args)
    from erp_sync.workers.reconcile import run_sweep

    summary = run_sweep(settings)
    print(json.dumps(summary.as_dict(), indent=2))
    return {"succeeded": EXIT_OK, "skipped": EXIT_SKIPPED}.get(summary.status, EXIT_FAILURE)


def _print_history(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from erp_sync.shared.db import make_engine, make_session_factory, translate_db_error
    from erp_sync.workers.reconcile_history import history, show

    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            if args.show is not None:
                run = show(session, args.show)
                if run is None:
                    print(f"erp-sync: no reconciliation run {args.show}", file=sys.stderr)
                    return EXIT_FAILURE
                print(json.dumps(run, indent=2))
            else:
                print(json.dumps([s.as_dict() for s in history(session, args.limit)], indent=2))
        return EXIT_OK
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc  # main prints it as one line
    finally:
        engine.dispose()
