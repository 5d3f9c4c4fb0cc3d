"""Every table of erp-sync; importing this module fills `Base.metadata` for Alembic."""
from __future__ import annotations

from erp_sync.shared.models.catalog import Category, Media, ProductGroup, Variant
from erp_sync.shared.models.counts import ROW_COUNT_CHANGES, RowCount
from erp_sync.shared.models.events import ProcessedEvent
from erp_sync.shared.models.inventory import StockChange, StockLevel
from erp_sync.shared.models.operations import AlertThrottle, UnfinishedAttempt, WebhookTally
from erp_sync.shared.models.orders import Order, OrderConflict, OrderLine, StockHold
from erp_sync.shared.models.reconcile import (
    ReconciliationCorrection,
    ReconciliationHeldChange,
    ReconciliationRun,
)
from erp_sync.shared.models.states import MediaStatus, OrderStatus, RunStatus, StockChangeKind, StockChangeOutcome

__all__ = [
    "AlertThrottle",
    "Category",
    "Media",
    "MediaStatus",
    "Order",
    "OrderConflict",
    "OrderLine",
    "OrderStatus",
    "ProcessedEvent",
    "ProductGroup",
    "ReconciliationCorrection",
    "ReconciliationHeldChange",
    "ReconciliationRun",
    "ROW_COUNT_CHANGES",
    "RowCount",
    "RunStatus",
    "StockChange",
    "StockChangeKind",
    "StockChangeOutcome",
    "StockHold",
    "StockLevel",
    "UnfinishedAttempt",
    "Variant",
    "WebhookTally",
]
