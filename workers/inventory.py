"""The inventory worker: applies `inventory.change` events (spec 3.2) to the SKU's stock."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from erp_sync.shared.consumer import BatchHandler, Delivery, Handler
from erp_sync.shared.erp_events import InventoryChange, decode_event_of
from erp_sync.shared.models import StockChangeOutcome
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.settings import Settings
from erp_sync.workers.idempotency import record_events
from erp_sync.workers.stock import StockEvent, apply_stock_events
from erp_sync.workers.stock_rule import Delta, Total


def apply_inventory_change(event: InventoryChange, session: Session) -> StockChangeOutcome:
    """Apply one stock figure or difference once: a batch of one."""
    return apply_inventory_batch([event], session)[0]


def apply_inventory_batch(events: list[InventoryChange], session: Session) -> list[StockChangeOutcome]:
    """Apply each event once, in arrival order; a SKU not in the catalog is recorded all the same."""
    if not events:
        return []
    fresh = record_events(session, (event.event_id for event in events), events[0].event_type)
    stock_events: list[StockEvent] = []
    for event in events:
        data = event.data
        # The schema guarantees exactly one of new_quantity and quantity_change.
        change = (Total(data.new_quantity, event.timestamp) if data.new_quantity is not None
                  else Delta(data.quantity_change or 0, event.timestamp))
        stock_events.append(StockEvent(event.event_id, data.sku, change, duplicate=event.event_id not in fresh,
                                       location_id=data.location_id, reason=data.reason))
        fresh.discard(event.event_id)  # a later copy in the same batch is a duplicate
    return [decision.outcome for decision in apply_stock_events(session, stock_events)]


def decode_inventory_change(raw: bytes) -> InventoryChange:
    """Decode a queued body that must be a `inventory.change`."""
    return decode_event_of(raw, InventoryChange)


def build_handler(settings: Settings) -> Handler:
    """The inventory worker's handler; it needs nothing from the settings."""

    def handle(delivery: Delivery, session: Session) -> None:
        apply_inventory_change(decode_inventory_change(delivery.body), session)

    return handle


def build_batch_handler(settings: Settings) -> BatchHandler:
    """The inventory worker's whole-batch handler: the batch in one pass of the stock path, not one per event."""

    def handle_batch(deliveries: list[Delivery], session: Session) -> list[Iterable[OutgoingMessage] | None]:
        apply_inventory_batch([decode_inventory_change(delivery.body) for delivery in deliveries], session)
        return [None] * len(deliveries)

    return handle_batch
