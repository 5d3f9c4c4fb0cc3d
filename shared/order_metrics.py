"""Orders by status and how long the oldest unsynced one has waited, read from the database at each scrape."""
from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from erp_sync.shared.models import Order
from erp_sync.shared.models.orders import OrderStatus

logger = logging.getLogger(__name__)

# The statuses an operator waits on: the ERP has not taken these orders yet.
WAITING = (OrderStatus.PENDING_SYNC.value, OrderStatus.LOCAL_ONLY.value)


class OrderCollector(Collector):
    """Gauges of the orders per status and the age of the oldest `pending_sync` and `local_only` one."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("erp_sync_order_metrics_up", "1 when the orders could be read from the database")
        try:
            with self._engine.connect() as conn:
                per_status: dict[str, int] = {
                    status: count for status, count in conn.execute(
                        select(Order.status, func.count()).group_by(Order.status))}
                oldest: dict[str, float] = {status: float(age or 0) for status, age in conn.execute(
                    select(Order.status, func.extract("epoch", func.now() - func.min(Order.created_at)))
                    .where(Order.status.in_(WAITING)).group_by(Order.status))}
        except SQLAlchemyError as exc:
            logger.warning("order metrics: cannot read the orders: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        orders = GaugeMetricFamily("erp_sync_orders", "Orders by status", labels=["status"])
        for status in OrderStatus:
            orders.add_metric([status.value], per_status.get(status.value, 0))
        yield orders
        age = GaugeMetricFamily("erp_sync_orders_oldest_waiting_age_seconds",
                                "Age of the oldest order in this status (0 without any)", labels=["status"])
        for waiting in WAITING:
            age.add_metric([waiting], oldest.get(waiting, 0.0))
        yield age
