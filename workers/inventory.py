"""The inventory worker: applies `inventory.change` events (spec 3.2) to the SKU's stock."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from erp_sync.shared.consumer import BatchHandler, Delivery, Handled, Handler, HandlerResult
from erp_sync.shared.erp_events import InventoryChange, decode_event_of
from erp_sync.shared.models import StockChangeOutcome
from erp_sync.shared.receipt_stamp import received_at
from erp_sync.shared.settings import Settings
from erp_sync.workers.idempotency import Arrival, arrivals_of, Recording, body_digest, record_event, record_events
from erp_sync.workers.idempotency_window import IdempotencyWindow
from erp_sync.workers.stock import StockEvent, apply_stock_events, record_and_lock
from erp_sync.workers.stock_rule import Delta, Total


def apply_inventory_change(event: InventoryChange, session: Session, digest: bytes | None = None,
                           received: datetime | None = None) -> StockChangeOutcome:
    """Apply one stock figure or difference once; a reused id is alerted and counted (`record_event`).

    `digest` is its body's (`body_digest`); without one, a reused id is told only by its event type.
    `received`: when the door received it (shared/receipt_stamp.py), which settles a tie of totals.
    """
    fresh = record_event(session, Arrival.of(event, digest), _locking([event]))
    return _apply(session, [event], [fresh], [received])[0]


def apply_inventory_batch(events: list[InventoryChange], session: Session,
                          digests: Sequence[bytes | None] | None = None,
                          received: Sequence[datetime | None] | None = None) -> list[StockChangeOutcome]:
    """Apply each event once, in arrival order; a SKU not in the catalog is recorded all the same.

    `digests` are the bodies' (`body_digest`), `received` when the door received them, in the same order.

    Raises:
        EventIdConflict: an event reuses an id with another body; nothing is applied, and the
            consumer runs the batch again message by message, which parks just that one.
    """
    if not events:
        return []
    arrivals = arrivals_of(events, digests)
    return _apply(session, events, record_events(session, arrivals, _locking(events)),
                  [None] * len(events) if received is None else received)


def _locking(events: list[InventoryChange]) -> Recording:
    # The first arrival of an id is the one applied; a later copy is a duplicate or a conflict.
    skus: dict[str, str] = {}
    for event in events:
        skus.setdefault(event.event_id, event.data.sku)
    return record_and_lock(skus)


def _apply(session: Session, events: list[InventoryChange], fresh: list[bool],
           received: Sequence[datetime | None]) -> list[StockChangeOutcome]:
    stock_events: list[StockEvent] = []
    for event, first, stamp in zip(events, fresh, received, strict=True):
        data = event.data
        # The schema guarantees exactly one of new_quantity and quantity_change.
        change = (Total(data.new_quantity, event.timestamp, stamp) if data.new_quantity is not None
                  else Delta(data.quantity_change or 0, event.timestamp))
        stock_events.append(StockEvent(event.event_id, data.sku, change, duplicate=not first,
                                       location_id=data.location_id, reason=data.reason,
                                       order_id=data.reference_id))
    return [decision.outcome for decision in apply_stock_events(session, stock_events, locked=True)]


def decode_inventory_change(raw: bytes) -> InventoryChange:
    """Decode a queued body that must be a `inventory.change`."""
    return decode_event_of(raw, InventoryChange)


def build_handler(settings: Settings) -> Handler:
    """The inventory worker's handler: an event dated before the idempotency window is parked, not applied."""
    window = IdempotencyWindow.of(settings)

    def handle(delivery: Delivery, session: Session) -> Handled:
        event = window.admit(decode_inventory_change(delivery.body))
        outcome = apply_inventory_change(event, session, body_digest(delivery.body), received_at(delivery.headers))
        return Handled(outcome.value)

    return handle


def build_batch_handler(settings: Settings) -> BatchHandler:
    """The inventory worker's whole-batch handler: the batch in one pass of the stock path, not one per event.

    An event dated before the idempotency window fails the batch, which is then run message by
    message: that one is parked.
    """
    window = IdempotencyWindow.of(settings)

    def handle_batch(deliveries: list[Delivery], session: Session) -> list[HandlerResult]:
        events = window.admit_all([decode_inventory_change(delivery.body) for delivery in deliveries])
        outcomes = apply_inventory_batch(events, session, [body_digest(delivery.body) for delivery in deliveries],
                                         [received_at(delivery.headers) for delivery in deliveries])
        return [Handled(outcome.value) for outcome in outcomes]

    return handle_batch
