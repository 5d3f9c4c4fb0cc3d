"""`erp-sync ingress`: the ERP's door, served by gunicorn."""
from __future__ import annotations

import argparse

from erp_sync.cli.exits import EXIT_OK
from erp_sync.shared.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingress = commands.add_parser("ingress", help="serve the webhook ingress and read API (gunicorn)")
    ingress.add_argument("--port", type=int, default=None, help="port to listen on (default: INGRESS_PORT)")
    ingress.set_defaults(run=run_ingress)


def run_ingress(settings: Settings, args: argparse.Namespace) -> int:
    from erp_sync.ingress.serve import serve

    serve(settings, port=args.port)
    return EXIT_OK
