"""Orders by status and how long the oldest unsynced one has waited, read from the database at each scrape.

The counts are kept as orders change (shared/row_counts.py); the ages read the waiting orders alone
(`ix_orders_due`): neither scans the orders of the past.
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from erp_sync.shared import scraped
from erp_sync.shared.models import Order
from erp_sync.shared.models.states import OrderStatus
from erp_sync.shared.row_counts import ORDERS, row_counts

# The statuses an operator waits on: the ERP has not taken these orders yet.
WAITING = (OrderStatus.PENDING_SYNC.value, OrderStatus.LOCAL_ONLY.value)


def order_metrics(engine: Engine) -> Iterator[Metric]:
    """Gauges of the orders per status and the age of the oldest `pending_sync` and `local_only` one."""
    with engine.begin() as conn:  # committed: the counts' fold (shared/row_counts.py)
        oldest: dict[str, float] = {status: float(age or 0) for status, age in conn.execute(
            select(Order.status, func.extract("epoch", func.now() - func.min(Order.created_at)))
            .where(Order.status.in_(WAITING)).group_by(Order.status))}
        per_status = row_counts(conn, ORDERS)  # last: it folds (shared/row_counts.py)
    orders = GaugeMetricFamily("erp_sync_orders", "Orders by status", labels=["status"])
    for status in OrderStatus:
        orders.add_metric([status.value], per_status.get(status.value, 0))
    yield orders
    age = GaugeMetricFamily("erp_sync_orders_oldest_waiting_age_seconds",
                            "Age of the oldest order in this status (0 without any)", labels=["status"])
    for waiting in WAITING:
        age.add_metric([waiting], oldest.get(waiting, 0.0))
    yield age


def order_collector(engine: Engine) -> scraped.ScrapedCollector:
    """The order metrics, with `erp_sync_order_metrics_up`."""
    return scraped.ScrapedCollector("erp_sync_order_metrics_up", "1 when the orders could be read from the database",
                                    (SQLAlchemyError,), lambda: order_metrics(engine))
