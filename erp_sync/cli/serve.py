"""`erp-sync ingress` and `erp-sync api`: the ERP's door and the storefront's API, each its own process."""
from __future__ import annotations

import argparse

from erp_sync.shared.arguments import port_number
from erp_sync.cli.exits import EXIT_OK
from erp_sync.shared.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ingress = commands.add_parser("ingress", help="serve the ERP's webhook door (granian)")
    ingress.add_argument("--port", type=port_number, default=None, help="port to listen on (default: INGRESS_PORT)")
    ingress.set_defaults(run=run_ingress)
    api = commands.add_parser("api", help="serve the storefront's read API (granian; needs STOREFRONT_API_TOKEN)")
    api.add_argument("--port", type=port_number, default=None, help="port to listen on (default: API_PORT)")
    api.set_defaults(run=run_api)


def run_ingress(settings: Settings, args: argparse.Namespace) -> int:
    from erp_sync.ingress.serve import serve_door

    serve_door(settings, port=args.port)
    return EXIT_OK


def run_api(settings: Settings, args: argparse.Namespace) -> int:
    from erp_sync.ingress.serve import serve_api

    serve_api(settings, port=args.port)
    return EXIT_OK
