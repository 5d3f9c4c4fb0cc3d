"""The orders worker's SQL, all of it: record orders with their holds, lock one for a push, claim the ones to re-send.

Plain SQL, read into a dataclass and written back in one UPDATE: the ORM's identity map and unit
of work took a third of a push's CPU, for one row read and written once. Every statement is one
whatever a batch's size (arrays through unnest); SQLAlchemy 2.0 cannot cache a compiled ON
CONFLICT (sqlalchemy#10445).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp_sync.shared.db import SessionOrConnection, driver_execute
from erp_sync.shared.orders import LineItem, OrderPlaced

# One statement and one round trip whatever a batch's size: the lines and holds of the orders
# inserted, not of those already there. Their foreign keys are checked at the statement's end, when
# the orders are in. Through the driver: for a batch of one order, the three statements this
# replaces cost 1.0 ms of CPU through SQLAlchemy, this one 0.5 ms.
_RECORD = """
WITH inserted AS (
    INSERT INTO orders (order_id, order_date, customer_ref, warehouse_id, status)
    SELECT o.order_id, o.order_date, o.customer_ref, o.warehouse_id, 'received'
      FROM unnest(CAST(%(order_ids)s AS text[]), CAST(%(order_dates)s AS timestamptz[]),
                  CAST(%(customer_refs)s AS text[]), CAST(%(warehouse_ids)s AS text[]))
           WITH ORDINALITY AS o(order_id, order_date, customer_ref, warehouse_id, position)
     ORDER BY o.position
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id),
lines AS (
    SELECT l.* FROM unnest(CAST(%(line_order_ids)s AS text[]), CAST(%(line_nos)s AS integer[]),
                           CAST(%(skus)s AS text[]), CAST(%(quantities)s AS integer[]),
                           CAST(%(unit_prices)s AS numeric[])) AS l(order_id, line_no, sku, quantity, unit_price)
     WHERE l.order_id IN (SELECT order_id FROM inserted)),
inserted_lines AS (
    INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price) SELECT * FROM lines),
inserted_holds AS (
    INSERT INTO stock_holds (order_id, sku, quantity) SELECT order_id, sku, quantity FROM lines)
SELECT order_id FROM inserted
"""
# Orders as recorded, to set against a message that names them again. Only for ids a batch found
# recorded already (redeliveries, a storefront's re-send), so never on the way of a new order.
_RECORDED = """
SELECT o.order_id, o.order_date, o.customer_ref, o.warehouse_id, l.sku, l.quantity, l.unit_price
  FROM orders o LEFT JOIN order_lines l USING (order_id)
 WHERE o.order_id = ANY(%(order_ids)s) ORDER BY o.order_id, l.line_no
"""
# An error's first 2,000 characters: an ERP answering with a page of HTML should not fill the table.
ERROR_CHARS = 2000
_INSERT_REJECTED = text(f"""
INSERT INTO orders (order_id, order_date, customer_ref, status, last_error)
VALUES (:order_id, coalesce(CAST(:order_date AS timestamptz), clock_timestamp()), :customer_ref, 'rejected',
        left(:reason, {ERROR_CHARS}))
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id
""")
# Not on the order's row, which a push holds locked while the ERP answers (migration 0022).
_NOTE_CONFLICT = text("""
INSERT INTO order_conflicts (order_id, parked_at) VALUES (:order_id, clock_timestamp())
ON CONFLICT (order_id) DO UPDATE SET parked_at = excluded.parked_at
""")
# A plain FOR UPDATE, not SKIP LOCKED: the probe holds the rows it re-sends until its publish is
# confirmed, and a push that skipped such a row would drop the re-send itself. A duplicate waits
# for the push in flight instead, then finds the order settled or not due.
# clock_timestamp(), not now(): the database's clock, one for every worker, read at the lock.
# The lines come along, one row each: a push needs them, and it saves a round trip.
# Run through the driver (db.driver_execute): once per push each, their SQLAlchemy overhead was a
# tenth of a push's CPU.
_LOCK = """
SELECT o.order_id, o.status, o.attempts, o.first_attempt_at, o.next_attempt_at, o.synced_at, o.last_error,
       o.erp_received_at, clock_timestamp(), o.order_date, o.customer_ref, o.warehouse_id,
       l.sku, l.quantity, l.unit_price
  FROM orders o LEFT JOIN order_lines l USING (order_id)
 WHERE o.order_id = %(order_id)s ORDER BY l.line_no FOR UPDATE OF o
"""
_SAVE = f"""
UPDATE orders
   SET status = %(status)s, attempts = %(attempts)s, first_attempt_at = %(first_attempt_at)s,
       next_attempt_at = %(next_attempt_at)s, synced_at = %(synced_at)s, last_error = left(%(last_error)s, {ERROR_CHARS}),
       erp_received_at = %(erp_received_at)s, updated_at = clock_timestamp()
 WHERE order_id = %(order_id)s
"""
# An operator's "push it now": due at once; the row lock still lets one push at a time through.
# A `received` order named by its id too: its push message may have been parked or purged, and a
# push that finds it settled meanwhile does nothing. An order locked is being pushed (or re-sent by
# the probe) this moment: skipped, where waiting held the command for as long as the ERP took.
_WAITING = """
    SELECT order_id FROM orders
     WHERE (status IN ('pending_sync', 'local_only') AND (CAST(:order_ids AS text[]) IS NULL OR order_id = ANY(:order_ids)))
        OR (status = 'received' AND order_id = ANY(CAST(:order_ids AS text[])))"""
_MAKE_DUE = text(f"""
WITH waiting AS ({_WAITING}
       FOR UPDATE SKIP LOCKED)
UPDATE orders SET next_attempt_at = NULL, updated_at = clock_timestamp()
 WHERE order_id IN (SELECT order_id FROM waiting)
RETURNING order_id
""")
_COUNT_WAITING = text(f"SELECT count(*) FROM ({_WAITING}) AS waiting")
# The orders whose push message is sent again: those nothing has touched since :stranded_before
# (their message is lost; none when NULL), and with :local_only one due local_only order, the
# oldest not tried since it turned local_only, else the one due longest. (The oldest alone: one
# failing again was due first at every round when ORDER_RETRY_INTERVAL_S <= ERP_PROBE_INTERVAL_S,
# and the others waited behind it for good.) SKIP LOCKED: a row another transaction holds is being
# pushed or claimed. The rows stay locked until the messages are published, and are marked as
# touched so that the next rounds leave them alone while their push waits.
_NEXT_LOCAL_ONLY = """
    SELECT order_id FROM orders
     WHERE {also} status = 'local_only' AND coalesce(next_attempt_at, '-infinity') <= clock_timestamp()
     ORDER BY next_attempt_at NULLS FIRST, arrival LIMIT 1"""
_CLAIM = text(f"""
WITH stranded AS (SELECT order_id FROM orders
                   WHERE status IN ('received', 'pending_sync') AND updated_at < CAST(:stranded_before AS timestamptz)
                   ORDER BY arrival LIMIT :limit FOR UPDATE SKIP LOCKED),
     local_only AS ({_NEXT_LOCAL_ONLY.format(also="CAST(:local_only AS boolean) AND")} FOR UPDATE SKIP LOCKED)
UPDATE orders SET updated_at = now()
 WHERE order_id IN (SELECT order_id FROM stranded UNION ALL SELECT order_id FROM local_only)
RETURNING order_id, status, arrival
""")
_PEEK_LOCAL_ONLY = text(_NEXT_LOCAL_ONLY.format(also=""))


def record_orders(scope: SessionOrConnection, orders: Sequence[OrderPlaced]) -> set[str]:
    """Insert the orders not recorded yet, in their order of arrival, with their lines and holds.

    Returns the ids inserted; an order already there is left as it is. Two workers recording the
    same duplicates in opposite orders could deadlock: PostgreSQL then fails one batch, and the
    consumer records that batch message by message.
    """
    by_id = first_copies(orders)
    first_of_each = list(by_id.values())
    lines = [(order.order_id, number, line) for order in first_of_each
             for number, line in enumerate(order.line_items, start=1)]
    rows = driver_execute(scope, _RECORD, {
        "order_ids": list(by_id),
        "order_dates": [order.order_date for order in first_of_each],
        "customer_refs": [order.customer_ref for order in first_of_each],
        "warehouse_ids": [order.warehouse_id for order in first_of_each],
        "line_order_ids": [order_id for order_id, _, _ in lines],
        "line_nos": [number for _, number, _ in lines],
        "skus": [line.sku for _, _, line in lines],
        "quantities": [line.quantity for _, _, line in lines],
        "unit_prices": [line.unit_price for _, _, line in lines],
    })
    return {order_id for order_id, in rows}


def first_copies(orders: Sequence[OrderPlaced]) -> dict[str, OrderPlaced]:
    """Each order id's first copy in the batch, in the batch's order: the one recorded if it is new."""
    by_id: dict[str, OrderPlaced] = {}
    for order in orders:
        by_id.setdefault(order.order_id, order)
    return by_id


def recorded_orders(scope: SessionOrConnection, order_ids: Collection[str]) -> dict[str, OrderPlaced]:
    """The orders of these ids as recorded (a malformed one's without lines), by id."""
    rows = driver_execute(scope, _RECORDED, {"order_ids": list(order_ids)})
    return {order_id: _as_recorded(order_id, group[0][1:4], group)
            for order_id, group in ((key, list(group)) for key, group in groupby(rows, key=itemgetter(0)))}


def _as_recorded(order_id: str, columns: Sequence[Any], rows: Sequence[tuple[Any, ...]]) -> OrderPlaced:
    """The order as recorded, from its columns (date, customer, warehouse) and its lines' rows.

    Each line's row ends (sku, quantity, unit_price). Validated when it arrived, so not again.
    """
    order_date, customer_ref, warehouse_id = columns
    return OrderPlaced.model_construct(
        order_id=order_id, order_date=order_date, customer_ref=customer_ref, warehouse_id=warehouse_id,
        line_items=[LineItem.model_construct(sku=sku, quantity=quantity, unit_price=unit_price)
                    for *_, sku, quantity, unit_price in rows if sku is not None],
    )


def note_conflict(scope: SessionOrConnection, order_id: str) -> None:
    """Note that a different order under a recorded order's id was parked just now."""
    scope.execute(_NOTE_CONFLICT, {"order_id": order_id})


def record_rejected(scope: SessionOrConnection, order_id: str, reason: str, order_date: datetime | None = None,
                    customer_ref: str = "") -> bool:
    """Record an order whose message is malformed as rejected, unless it is recorded already; whether it was.

    With the date and customer it gives, where each is valid alone; without a date, its receipt's.
    """
    inserted = scope.execute(_INSERT_REJECTED, {"order_id": order_id, "reason": reason, "order_date": order_date,
                                                "customer_ref": customer_ref})
    return inserted.scalar_one_or_none() is not None


@dataclass
class PushState:
    """The columns of an order's row that a push reads and writes, and the database's time at the lock."""

    order_id: str
    status: str
    attempts: int
    first_attempt_at: datetime | None
    next_attempt_at: datetime | None
    synced_at: datetime | None
    last_error: str | None
    erp_received_at: datetime | None
    now: datetime


def lock(scope: SessionOrConnection, order_id: str) -> tuple[PushState, OrderPlaced] | None:
    """The order's row, locked for this transaction, and the order as recorded; None if no order has that id."""
    rows = driver_execute(scope, _LOCK, {"order_id": order_id})
    if not rows:
        return None
    first = rows[0]
    return PushState(*first[:9]), _as_recorded(order_id, first[9:12], rows)


def save(scope: SessionOrConnection, row: PushState) -> None:
    """Write the push's outcome back to the order's row."""
    columns = dict(vars(row))  # not asdict: it deep-copies every value, 3% of a push's CPU
    del columns["now"]
    driver_execute(scope, _SAVE, columns)


def claim(scope: SessionOrConnection, stranded_before: datetime | None, *, local_only: bool,
          limit: int = 1) -> list[tuple[str, str]]:
    """The orders to send a push message for again (see _CLAIM), as (order_id, status), oldest first."""
    rows = scope.execute(_CLAIM, {"stranded_before": stranded_before, "local_only": local_only, "limit": limit})
    return [(row.order_id, row.status) for row in sorted(rows, key=lambda row: row.arrival)]


def next_local_only(scope: SessionOrConnection) -> str | None:
    """The local_only order due first, read without a lock; None if none is due. `claim` skips it
    while a push holds its row, and takes the next one due."""
    return scope.execute(_PEEK_LOCAL_ONLY).scalar_one_or_none()


def count_waiting(session: Session, order_ids: Sequence[str] | None) -> int:
    """How many orders `make_due` would make due now (those being pushed this moment included)."""
    ids = None if order_ids is None else list(order_ids)
    return int(session.execute(_COUNT_WAITING, {"order_ids": ids}).scalar_one())


def make_due(session: Session, order_ids: Sequence[str] | None) -> list[str]:
    """Make these waiting orders (pending_sync or local_only; all such when None) due now, and these
    received ones, but for those being pushed this moment; the ids made due."""
    ids = None if order_ids is None else list(order_ids)
    return sorted(session.execute(_MAKE_DUE, {"order_ids": ids}).scalars())
