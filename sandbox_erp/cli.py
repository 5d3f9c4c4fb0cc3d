"""`erp-sync sandbox-erp` and `erp-sync send-webhook`: their arguments and what they run."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from erp_sync.sandbox_erp.client import BadUrl, Unreachable, load_json_file, sandbox_admin, send_webhook
from erp_sync.sandbox_erp.serving import run_sandbox
from erp_sync.sandbox_erp.settings import DEFAULT_PORT, config_from_env
from erp_sync.shared.arguments import port_or_any
from erp_sync.shared.errors import ConfigurationError

__all__ = ["add_sandbox_arguments", "add_send_webhook_arguments", "run_sandbox", "run_sandbox_command",
           "sandbox_admin", "send_webhook", "send_webhook_command"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIGURATION = 2  # as every erp-sync command: the line on stderr names the variable


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `erp-sync sandbox-erp`: serve by default, or one admin verb."""
    parser.add_argument("--port", type=port_or_any, default=DEFAULT_PORT,
                        help=f"port to serve on (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a throw-away CA")
    parser.add_argument("--keep-alive", action="store_true",
                        help="keep connections alive, as a production ERP does (granian; plain HTTP; "
                             "`down` and `lost` then answer 503 and close)")
    parser.add_argument("--ca-file", type=Path, default=None, help="where --tls writes its CA (default ./sandbox-erp-ca.pem)")
    parser.add_argument("--url", default=None, help="admin verbs: the sandbox's URL (default SANDBOX_ERP_URL)")
    parser.add_argument("--ca-bundle", default=None, help="admin verbs: CA file to trust for an HTTPS sandbox")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, text in (("sale", "an in-store sale"), ("receipt", "a goods receipt")):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("sku")
        verb.add_argument("--quantity", type=int, default=1)
    adjust = verbs.add_parser("adjust", help="a stock adjustment")
    adjust.add_argument("sku")
    how = adjust.add_mutually_exclusive_group(required=True)
    how.add_argument("--set", type=int, dest="new_quantity")
    how.add_argument("--change", type=int, dest="quantity_change")
    price = verbs.add_parser("price", help="a price change (fires catalog.update)")
    price.add_argument("sku")
    price.add_argument("price")
    price.add_argument("--mrp", default=None)
    product = verbs.add_parser("new-product", help="a new product group, generated or from a JSON file")
    product.add_argument("--file", type=Path, default=None)
    verbs.add_parser("publish-catalog", help="send every product group as catalog.update (a first load)")
    fault = verbs.add_parser("fault", help="switch the fault mode of the spec endpoints")
    fault.add_argument("mode", choices=["none", "down", "5xx", "slow", "lost"])
    fault.add_argument("--status", type=int, default=503, help="5xx: the status, a 5xx or 429")
    fault.add_argument("--retry-after", type=int, default=None, dest="retry_after_s", metavar="SECONDS",
                       help="5xx: answer with this Retry-After")
    fault.add_argument("--delay-ms", type=int, default=0)
    fault.add_argument("--reject", nargs="*", default=[], metavar="SKU", help="SKUs answered with 400")
    fault.add_argument("--only-sku", nargs="*", default=[], metavar="SKU", dest="slow_skus",
                       help="slow: hold up only the orders naming these SKUs")
    verbs.add_parser("faults", help="the fault state, and how many requests slow holds up now")
    for name, text in (("orders", "orders received"), ("deliveries", "webhook deliveries"), ("alerts", "admin alerts")):
        verbs.add_parser(name, help=text)


def _payload(args: argparse.Namespace) -> dict[str, Any] | None:
    verb = args.verb
    if verb in ("sale", "receipt"):
        return {"sku": args.sku, "quantity": args.quantity}
    if verb == "adjust":
        return {"sku": args.sku, "new_quantity": args.new_quantity, "quantity_change": args.quantity_change}
    if verb == "price":
        return {"sku": args.sku, "price": args.price, "mrp": args.mrp}
    if verb == "new-product":
        return dict(load_json_file(args.file)) if args.file else {}
    if verb == "publish-catalog":
        return {}
    if verb == "fault":
        return {"mode": args.mode, "status": args.status, "retry_after_s": args.retry_after_s,
                "delay_ms": args.delay_ms, "reject_skus": args.reject, "slow_skus": args.slow_skus}
    return None


def run_sandbox_command(args: argparse.Namespace) -> int:
    """Serve the sandbox, or run one admin verb against a running one and print its answer."""
    if args.verb is None:
        try:
            run_sandbox(port=args.port, host=args.host, tls=args.tls, ca_file=args.ca_file, keep_alive=args.keep_alive)
        except ConfigurationError as exc:
            print(f"erp-sync: configuration error: {exc}", file=sys.stderr)
            return EXIT_CONFIGURATION
        return EXIT_OK
    config = config_from_env()
    url = args.url or os.environ.get("SANDBOX_ERP_URL", f"http://127.0.0.1:{DEFAULT_PORT}")
    refusal = _unreadable(args.file, "--file") if args.verb == "new-product" else None
    refusal = refusal or _unreadable(args.ca_bundle, "--ca-bundle")
    if refusal:
        print(f"erp-sync: {refusal}", file=sys.stderr)
        return EXIT_CONFIGURATION
    try:
        payload = _payload(args)
    except (ValueError, TypeError) as exc:  # not JSON text (UnicodeDecodeError too), or not an object
        print(f"erp-sync: --file {args.file}: not a JSON object ({exc})", file=sys.stderr)
        return EXIT_CONFIGURATION
    try:
        status, body = sandbox_admin(args.verb, url, config.effective_admin_token, payload,
                                     verify=args.ca_bundle or True)
    except BadUrl:
        print(f"erp-sync: --url or SANDBOX_ERP_URL: {url!r} is not an http(s) URL", file=sys.stderr)
        return EXIT_CONFIGURATION
    except Unreachable as exc:
        print(f"erp-sync: the sandbox ERP at {url} is not reachable ({exc}); is `erp-sync sandbox-erp` running there?",
              file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(body, indent=2))
    return EXIT_OK if status < 400 else EXIT_FAILURE


def _unreadable(path: Path | str | None, flag: str) -> str | None:
    """Why the file an argument names cannot be read, None when it can (or none is named)."""
    if path is None:
        return None
    try:
        Path(path).read_bytes()
    except OSError as exc:
        return f"{flag} {path}: {exc.strerror or exc}"
    return None


def add_send_webhook_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `erp-sync send-webhook FILE [--url URL]`."""
    parser.add_argument("file", type=Path, help="the event payload to sign and post, sent byte for byte")
    parser.add_argument("--url", default=None, help="default: the local ingress /webhooks/erp")
    parser.add_argument("--secret", default=None, help="default: ERP_WEBHOOK_SECRET (its first entry)")
    parser.add_argument("--ca-bundle", default=None, help="CA file to trust for an HTTPS ingress")


def send_webhook_command(args: argparse.Namespace) -> int:
    """Sign and post a payload file; print the status and body."""
    config = config_from_env()
    url = args.url or config.webhook_url
    secret = args.secret or config.webhook_secret
    if not url or not secret:
        print("erp-sync: send-webhook needs --url and --secret (or ERP_WEBHOOK_SECRET)", file=sys.stderr)
        return EXIT_FAILURE
    refusal = _unreadable(args.file, "send-webhook") or _unreadable(args.ca_bundle, "--ca-bundle")
    if refusal:
        print(f"erp-sync: {refusal}", file=sys.stderr)
        return EXIT_CONFIGURATION
    try:
        status, body = send_webhook(args.file, url, secret, ca_bundle=args.ca_bundle)
    except BadUrl as exc:
        print(f"erp-sync: send-webhook --url: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except Unreachable as exc:
        print(f"erp-sync: send-webhook: nothing answered at {url} ({exc})", file=sys.stderr)
        return EXIT_FAILURE
    print(status)
    print(body)
    return EXIT_OK if status < 300 else EXIT_FAILURE
