"""`erp-sync sandbox-erp` and `erp-sync send-webhook`: the stand-in ERP, an optional extra."""
from __future__ import annotations

import argparse
import sys

from erp_sync.shared.settings import Settings
from erp_sync.cli.exits import EXIT_CONFIGURATION, Command

COMMANDS = ("sandbox-erp", "send-webhook")
INSTALL_HINT = "the sandbox ERP is not installed: pip install 'erp-sync[sandbox]'"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], *, with_arguments: bool) -> None:
    """Both commands; their arguments only when asked, since they import Flask, requests and trustme."""
    sandbox_erp = commands.add_parser("sandbox-erp", help="a stand-in ERP for development, staging and tests")
    send = commands.add_parser("send-webhook", help="sign a payload file and post it to the ingress")
    if not with_arguments:
        return
    try:
        from erp_sync.sandbox_erp.cli import (
            add_sandbox_arguments,
            add_send_webhook_arguments,
            run_sandbox_command,
            send_webhook_command,
        )
    except ImportError as exc:
        for parser in (sandbox_erp, send):
            parser.add_argument("arguments", nargs=argparse.REMAINDER)
            parser.set_defaults(run=_not_installed(exc), needs_settings=False)
        return
    add_sandbox_arguments(sandbox_erp)
    sandbox_erp.set_defaults(run=lambda _settings, args: run_sandbox_command(args), needs_settings=False)
    add_send_webhook_arguments(send)
    send.set_defaults(run=lambda _settings, args: send_webhook_command(args), needs_settings=False)


def _not_installed(exc: ImportError) -> Command:
    def refuse(_settings: Settings, _args: argparse.Namespace) -> int:
        print(f"erp-sync: {INSTALL_HINT} ({exc})", file=sys.stderr)
        return EXIT_CONFIGURATION

    return refuse
