"""The inventory worker: applies `inventory.change` events (spec 3.2) to the SKU's stock."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TypedDict

from sqlalchemy.orm import Session

from erp_sync.shared.consumer import BatchHandler, Delivery, Handler
from erp_sync.shared.erp_events import InventoryChange, decode_event_of
from erp_sync.shared.models import StockChangeOutcome
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.settings import Settings
from erp_sync.workers.idempotency import record_event
from erp_sync.workers.inventory_batch import apply_inventory_batch
from erp_sync.workers.stock import apply_absolute, apply_delta, record_duplicate

logger = logging.getLogger(__name__)


class _Context(TypedDict):
    sku: str
    erp_timestamp: datetime
    event_id: str
    location_id: str | None
    reason: str | None


def apply_inventory_change(event: InventoryChange, session: Session) -> StockChangeOutcome:
    """Apply one stock figure or difference once; a SKU not in the catalog is recorded all the same."""
    data = event.data
    context = _Context(sku=data.sku, erp_timestamp=event.timestamp, event_id=event.event_id,
                       location_id=data.location_id, reason=data.reason)
    if not record_event(session, event.event_id, event.event_type):
        record_duplicate(session, quantity=data.new_quantity, delta=data.quantity_change, **context)
        logger.info("event %s for sku %s was applied before; ignored as a duplicate", event.event_id, data.sku)
        return StockChangeOutcome.DUPLICATE
    if data.new_quantity is not None:
        outcome = apply_absolute(session, quantity=data.new_quantity, **context)
    else:
        # The schema guarantees exactly one of new_quantity and quantity_change.
        outcome = apply_delta(session, delta=data.quantity_change or 0, **context)
    if outcome is StockChangeOutcome.STALE:
        logger.info("event %s for sku %s is older than the figure applied; recorded as stale",
                    event.event_id, data.sku)
    return outcome


def decode_inventory_change(raw: bytes) -> InventoryChange:
    """Decode a queued body that must be a `inventory.change`."""
    return decode_event_of(raw, InventoryChange)


def build_handler(settings: Settings) -> Handler:
    """The inventory worker's handler; it needs nothing from the settings."""

    def handle(delivery: Delivery, session: Session) -> None:
        apply_inventory_change(decode_inventory_change(delivery.body), session)

    return handle


def build_batch_handler(settings: Settings) -> BatchHandler:
    """The inventory worker's whole-batch handler: the same effects in a few statements."""

    def handle_batch(deliveries: list[Delivery], session: Session) -> list[Iterable[OutgoingMessage] | None]:
        apply_inventory_batch([decode_inventory_change(delivery.body) for delivery in deliveries], session)
        return [None] * len(deliveries)

    return handle_batch
