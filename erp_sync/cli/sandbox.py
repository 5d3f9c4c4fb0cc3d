"""`erp-sync sandbox-erp` and `erp-sync send-webhook`: the stand-in ERP, an optional extra."""
from __future__ import annotations

import argparse
import sys

from erp_sync.shared.settings import Settings
from erp_sync.cli.exits import EXIT_CONFIGURATION, Command

COMMANDS = ("sandbox-erp", "send-webhook")
INSTALL_HINT = "the sandbox ERP is not installed: pip install 'erp-sync[sandbox]'"


HELP = {"sandbox-erp": "a stand-in ERP for development, staging and tests",
        "send-webhook": "sign a payload file and post it to the ingress"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], *, with_arguments: bool) -> None:
    """Both commands; their arguments only when asked, since they import Flask, requests and trustme."""
    if not with_arguments:
        for name, help_text in HELP.items():
            commands.add_parser(name, help=help_text)
        return
    try:
        from erp_sync.sandbox_erp.cli import (
            add_sandbox_arguments,
            add_send_webhook_arguments,
            run_sandbox_command,
            send_webhook_command,
        )
    except ImportError as exc:
        for name, help_text in HELP.items():
            # No option is known here: every word after the command, `--port 8000` too, is taken as
            # it is, and the command says it is not installed rather than that `--port` is unknown.
            parser = commands.add_parser(name, help=help_text, prefix_chars="\0", add_help=False)
            parser.add_argument("arguments", nargs="*")
            parser.set_defaults(run=_not_installed(exc), needs_settings=False)
        return
    sandbox_erp = commands.add_parser("sandbox-erp", help=HELP["sandbox-erp"])
    add_sandbox_arguments(sandbox_erp)
    sandbox_erp.set_defaults(run=lambda _settings, args: run_sandbox_command(args), needs_settings=False)
    send = commands.add_parser("send-webhook", help=HELP["send-webhook"])
    add_send_webhook_arguments(send)
    send.set_defaults(run=lambda _settings, args: send_webhook_command(args), needs_settings=False)


def _not_installed(exc: ImportError) -> Command:
    def refuse(_settings: Settings, _args: argparse.Namespace) -> int:
        print(f"erp-sync: {INSTALL_HINT} ({exc})", file=sys.stderr)
        return EXIT_CONFIGURATION

    return refuse
