"""`erp-sync`, the one console script: assembles every command group, parses, dispatches.

Each module of this package is one command group (`register` adds its subcommands). Only the
sandbox's commands import the sandbox: the sweep's process has a memory target. A group whose
commands read the database sets `needs_current_schema`: its schema is checked before they run.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from erp_sync.cli import dev, dlq, migrate, orders, reconcile, sandbox, serve, worker
from erp_sync.cli.exits import EXIT_CONFIGURATION, EXIT_FAILURE, EXIT_INTERRUPTED
from erp_sync.shared.env_file import apply_env_file
from erp_sync.shared.errors import ConfigurationError, ErpSyncError
from erp_sync.shared.logs import configure_logging, quiet_pika_connection_errors
from erp_sync.shared.settings import load_settings


def build_parser(*, with_sandbox: bool = True) -> argparse.ArgumentParser:
    """Every command; with_sandbox=False leaves the sandbox's two without their arguments."""
    parser = argparse.ArgumentParser(prog="erp-sync", description="Keeps the ERP and the shop in sync.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate.register(commands)
    serve.register(commands)
    worker.register(commands)
    reconcile.register(commands)
    dlq.register(commands)
    orders.register(commands)
    sandbox.register(commands, with_arguments=with_sandbox)
    dev.register(commands)
    return parser


def process_name(arguments: Sequence[str]) -> str:
    """What a log line calls this process: the command, and a worker's name ("worker inventory")."""
    return " ".join(arguments[:2]) if arguments[:1] == ["worker"] else arguments[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command: its exit code. A reader that closed our stdout (`| head`), or Ctrl-C in a
    one-shot command, ends it quietly; the servers and workers stop on SIGINT by themselves."""
    try:
        try:
            return _run(argv)
        finally:
            # Here, not at the interpreter's exit, where a closed pipe is a traceback-like complaint.
            sys.stdout.flush()
    except BrokenPipeError:
        # Python's idiom (the signal module's note on SIGPIPE): the interpreter flushes stdout
        # again as it exits, so point it at devnull first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("erp-sync: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # The command comes first (the top level has no option but --help).
    with_sandbox = bool(arguments) and arguments[0] in sandbox.COMMANDS
    args = build_parser(with_sandbox=with_sandbox).parse_args(arguments)
    if args.command != "dev":
        # What `erp-sync dev` wrote for other shells; dev itself derives URLs from its own flags.
        try:
            apply_env_file()
        except ConfigurationError as exc:
            print(f"erp-sync: configuration error: {exc}", file=sys.stderr)
            return EXIT_CONFIGURATION
    if not getattr(args, "needs_settings", True):
        # The sandbox ERP stands in for another system: it has settings of its own.
        json_logs = os.environ.get("LOG_FORMAT", "").lower() == "json"
        configure_logging(logging.INFO, "json" if json_logs else "text", process_name(arguments))
        return int(args.run(None, args))
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format, process_name(arguments))
        # pika narrates every connection at INFO; its warnings and errors still show, but for a
        # one-shot command, which says in one line of its own that it cannot reach the broker.
        logging.getLogger("pika").setLevel(logging.CRITICAL if getattr(args, "one_shot", False)
                                           else max(logging.WARNING, logging.getLevelName(settings.log_level)))
        quiet_pika_connection_errors()
        if settings.alert_smtp_host is not None:
            # Imported only then: the sweep's process has a memory target.
            from erp_sync.shared.alert_mail import install_alert_mail

            install_alert_mail(settings)
        if getattr(args, "needs_current_schema", False):
            # As the workers do: against a schema behind, a command failed on its first missing column
            # (`reconcile --now` recorded a failed sweep and raised its ALERT). A database out of reach
            # passes: the command's own first query says so in its one line. Imported only then, as above.
            from erp_sync.shared.schema import check_current_schema

            check_current_schema(settings.database_url)
        return int(args.run(settings, args))
    except ConfigurationError as exc:
        print(f"erp-sync: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except ErpSyncError as exc:
        print(f"erp-sync: {exc}", file=sys.stderr)
        return EXIT_FAILURE
