"""`erp-sync`: the one console script. Parses arguments and calls into the packages."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from shared.errors import ConfigurationError, ErpSyncError
from shared.settings import Settings, load_settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIGURATION = 2
EXIT_SKIPPED = 3  # `reconcile --now`: another sweep was running
SANDBOX_COMMANDS = ("sandbox-erp", "send-webhook")

logger = logging.getLogger("erp_sync")


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from shared.broker import declare_all
    from shared.migrate import create_database_if_missing, upgrade_schema

    created = create_database_if_missing(settings.database_url)
    upgrade_schema(settings.database_url)
    declare_all(settings.amqp_url, settings.retry_delays_ms, settings.order_retry_interval_s * 1000)
    print(json.dumps({"database_created": created, "schema": "head", "topology": "declared"}))
    return EXIT_OK


def _ingress(settings: Settings, args: argparse.Namespace) -> int:
    from ingress.serve import serve

    serve(settings, port=args.port)
    return EXIT_OK


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.name == "reconcile":
        from workers.reconcile_schedule import run_reconcile_worker

        run_reconcile_worker(settings)
        return EXIT_OK
    from workers.runner import run_worker

    run_worker(args.name, settings)
    return EXIT_OK


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    from shared.dev import run_all

    settings.webhook_secrets()  # the ingress would refuse to start; say so before starting anything
    _migrate(settings, args)
    return run_all(args.port or settings.ingress_port, None if args.no_sandbox else args.sandbox_port)


def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    if not args.now:
        return _reconcile_history(settings, args)
    from workers.reconcile import run_sweep

    summary = run_sweep(settings)
    print(json.dumps(summary.as_dict(), indent=2))
    return {"succeeded": EXIT_OK, "skipped": EXIT_SKIPPED}.get(summary.status, EXIT_FAILURE)


def _reconcile_history(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from shared.db import make_engine, make_session_factory, translate_db_error
    from workers.reconcile_history import history, show

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


def build_parser(*, sandbox: bool = True) -> argparse.ArgumentParser:
    """Every command; with sandbox=False the sandbox's two lack their arguments, which import Flask and requests."""
    parser = argparse.ArgumentParser(prog="erp-sync", description="Keeps the ERP and the shop in sync.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="create or upgrade the schema and declare the RabbitMQ topology")
    migrate.set_defaults(run=_migrate)

    ingress = commands.add_parser("ingress", help="serve the webhook ingress and read API (gunicorn)")
    ingress.add_argument("--port", type=int, default=None, help="port to listen on (default: INGRESS_PORT)")
    ingress.set_defaults(run=_ingress)

    worker = commands.add_parser("worker", help="run one worker process (scale each on its own)")
    worker.add_argument("name", choices=["catalog", "inventory", "media", "orders", "reconcile"])
    worker.set_defaults(run=_worker)

    reconcile = commands.add_parser("reconcile", help="compare the ERP's stock snapshot with ours and correct drift")
    action = reconcile.add_mutually_exclusive_group(required=True)
    action.add_argument("--now", action="store_true", help="run one sweep now and print its JSON summary")
    action.add_argument("--history", action="store_true", help="print the latest runs as JSON")
    action.add_argument("--show", type=int, metavar="RUN", help="print one run and its corrections as JSON")
    reconcile.add_argument("--limit", type=int, default=20, help="runs listed by --history (20)")
    reconcile.set_defaults(run=_reconcile)

    sandbox_erp = commands.add_parser("sandbox-erp", help="a stand-in ERP for development, staging and tests")
    send = commands.add_parser("send-webhook", help="sign a payload file and post it to the ingress")
    if sandbox:
        from sandbox_erp.cli import (
            add_sandbox_arguments,
            add_send_webhook_arguments,
            run_sandbox_command,
            send_webhook_command,
        )

        add_sandbox_arguments(sandbox_erp)
        sandbox_erp.set_defaults(run=lambda _settings, args: run_sandbox_command(args), needs_settings=False)
        add_send_webhook_arguments(send)
        send.set_defaults(run=lambda _settings, args: send_webhook_command(args), needs_settings=False)

    dev = commands.add_parser("dev", help="migrate, then run the sandbox ERP, the ingress and every worker here")
    dev.add_argument("--port", type=int, default=None, help="port of the ingress (default: INGRESS_PORT)")
    dev.add_argument("--sandbox-port", type=int, default=8900, help="port of the sandbox ERP (default 8900)")
    dev.add_argument("--no-sandbox", action="store_true", help="do not start the sandbox ERP")
    dev.set_defaults(run=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # The command comes first (the top level has no option but --help). Only the sandbox's own
    # commands pay for its imports: the sweep's process has a memory target.
    sandbox = bool(arguments) and arguments[0] in SANDBOX_COMMANDS
    args = build_parser(sandbox=sandbox).parse_args(arguments)
    if not getattr(args, "needs_settings", True):
        # The sandbox ERP stands in for another system: it has settings of its own.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return int(args.run(None, args))
    try:
        settings = load_settings()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # pika narrates every connection at INFO; its warnings and errors still show.
        logging.getLogger("pika").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
        return int(args.run(settings, args))
    except ConfigurationError as exc:
        print(f"erp-sync: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except ErpSyncError as exc:
        print(f"erp-sync: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
