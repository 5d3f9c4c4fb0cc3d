"""`erp-sync orders list|show|retry`: orders by status, one order whole, a waiting one pushed now."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from erp_sync.shared.arguments import identifier, positive_int
from erp_sync.cli.exits import EXIT_CONFIGURATION, EXIT_FAILURE, EXIT_OK
from erp_sync.shared.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# What `orders retry ID` pushes (workers/order_store.py, make_due).
PUSHABLE = frozenset({"received", "pending_sync", "local_only"})


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    orders = commands.add_parser("orders", help="orders by status; push a waiting one now")
    actions = orders.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="orders, oldest first, one JSON object a line")
    listing.add_argument("--status", help="received, synced, pending_sync, local_only or rejected")
    listing.add_argument("--limit", type=positive_int, default=100, help="at most this many (100)")
    show = actions.add_parser("show", help="one order with its lines and holds")
    show.add_argument("id", type=identifier)
    retry = actions.add_parser("retry", help="push waiting orders now: those named (received ones too), or --all")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", default=[], metavar="ID", type=identifier)
    which.add_argument("--all", action="store_true", help="every pending_sync and local_only order")
    orders.set_defaults(run=run_orders, one_shot=True, needs_current_schema=True)


def run_orders(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: SQLAlchemy is no import of the sweep's process, which builds this parser too.
    from sqlalchemy.exc import SQLAlchemyError

    from erp_sync.shared.db import make_engine, make_session_factory, translate_db_error
    from erp_sync.shared.models import OrderStatus
    from erp_sync.shared.order_view import count_orders, order_view, orders_by_status

    statuses = [status.value for status in OrderStatus]
    if args.action == "list" and args.status not in (None, *statuses):
        print(f"erp-sync: no status {args.status!r}; the statuses are {', '.join(statuses)}", file=sys.stderr)
        return EXIT_CONFIGURATION

    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            if args.action == "list":
                listed = 0
                for order in orders_by_status(session, args.status, args.limit):
                    print(json.dumps(order))
                    listed += 1
                more = count_orders(session, args.status) - args.limit if listed == args.limit else 0
                if more > 0:
                    # On stderr: what a pipe reads stays one order a line. Unsaid, the newest looked missing.
                    print(f"erp-sync: {more} more, newer; --limit {args.limit + more} lists them all",
                          file=sys.stderr)
                return EXIT_OK
            if args.action == "show":
                view = order_view(session, args.id)
                if view is None:
                    print(f"erp-sync: no order {args.id}", file=sys.stderr)
                    return EXIT_FAILURE
                print(json.dumps(view, indent=2))
                return EXIT_OK
            return _retry(settings, session, None if args.all else args.ids)
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc  # main prints it as one line
    finally:
        engine.dispose()


def _retry(settings: Settings, session: Session, order_ids: list[str] | None) -> int:
    from sqlalchemy import select

    from erp_sync.shared.broker import queue_depths
    from erp_sync.shared.models import Order
    from erp_sync.shared.publisher import CONFIRM_WINDOW, ConfirmingPublisher
    from erp_sync.shared.topology import ORDERS_PUSH_QUEUE
    from erp_sync.workers.order_store import count_waiting, make_due
    from erp_sync.workers.order_sync import push_message

    # Connected first: a broker out of reach stops us before any order is marked due.
    publisher = ConfirmingPublisher(settings.amqp_url, confirm_timeout_s=settings.publish_confirm_timeout_s)
    try:
        publisher.ensure_connected()
        # A push queue at its bound refuses new orders' pushes too: what would not fit is not begun.
        waiting = count_waiting(session, order_ids)
        queued = queue_depths(settings.amqp_url, [ORDERS_PUSH_QUEUE.name])[ORDERS_PUSH_QUEUE.name]
        room = settings.queue_max_length - queued
        if waiting > room:
            print(f"erp-sync: {waiting} orders to push, but {ORDERS_PUSH_QUEUE.name} has room for {max(room, 0)} "
                  f"({queued} queued, QUEUE_MAX_LENGTH {settings.queue_max_length}); nothing was pushed: let the "
                  "orders worker drain it (its pushes may be these orders already), or name fewer", file=sys.stderr)
            return EXIT_FAILURE
        due = make_due(session, order_ids)
        session.commit()
        if order_ids is None and not waiting:
            print("erp-sync: no order is pending_sync or local_only: nothing to push. An order still received "
                  "whose push message was parked is pushed by its id: `erp-sync orders retry ID`", file=sys.stderr)
        elif order_ids is None and len(due) < waiting:
            print(f"erp-sync: {waiting - len(due)} of the {waiting} waiting orders are being pushed this moment, "
                  "left to those pushes (`erp-sync orders list --status pending_sync` shows how they end)",
                  file=sys.stderr)
        for start in range(0, len(due), CONFIRM_WINDOW):
            window = due[start:start + CONFIRM_WINDOW]
            publisher.publish_all([push_message(order_id) for order_id in window])
            print("".join(f"pushing {order_id}\n" for order_id in window), end="", flush=True)
    finally:
        publisher.close()
    not_waiting = sorted(set(order_ids or ()) - set(due))
    found = session.execute(select(Order.order_id, Order.status).where(Order.order_id.in_(not_waiting))).tuples()
    statuses = {order_id: status for order_id, status in found}
    for order_id in not_waiting:
        print(f"erp-sync: {_why_not_pushed(order_id, statuses.get(order_id))}: not pushed", file=sys.stderr)
    return EXIT_FAILURE if not_waiting else EXIT_OK


def _why_not_pushed(order_id: str, status: str | None) -> str:
    if status is None:
        return f"no order {order_id}"
    if status in PUSHABLE:
        return f"order {order_id} is being pushed this moment (`erp-sync orders show {order_id}` tells how it ends)"
    return f"order {order_id} is {status}, not received, pending_sync or local_only"
