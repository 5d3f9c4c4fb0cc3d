"""Orders by status and the oldest waiting one, as /metrics reads them from the database."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import func, select

from erp_sync.shared.models import ROW_COUNT_CHANGES, Order
from erp_sync.shared.order_metrics import order_collector


def scrape(engine) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(order_collector(engine))
    return generate_latest(registry).decode()


def test_orders_are_counted_by_status_and_the_oldest_waiting_one_is_aged(committed_session, db_engine):
    # given two pending_sync orders, the older received an hour ago, and one synced
    now = datetime.now(UTC)
    for order_id, status, age in (("ORD-M-1", "pending_sync", 3600), ("ORD-M-2", "pending_sync", 60),
                                  ("ORD-M-3", "synced", 7200)):
        committed_session.add(Order(order_id=order_id, order_date=now, customer_ref="CUST-1", status=status,
                                    created_at=now - timedelta(seconds=age)))
    committed_session.commit()

    # when /metrics reads them
    text = scrape(db_engine)

    # then each status has its count (0 for none) and the oldest pending_sync is an hour old
    assert 'erp_sync_orders{status="pending_sync"} 2.0' in text
    assert 'erp_sync_orders{status="synced"} 1.0' in text
    assert 'erp_sync_orders{status="local_only"} 0.0' in text
    age = next(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('erp_sync_orders_oldest_waiting_age_seconds{status="pending_sync"}'))
    assert 3600 <= age < 3600 + 300
    assert 'erp_sync_orders_oldest_waiting_age_seconds{status="local_only"} 0.0' in text
    assert "erp_sync_order_metrics_up 1.0" in text
    # and the counts' changes were folded for good (the scrape committed)
    assert committed_session.scalar(select(func.count()).select_from(ROW_COUNT_CHANGES)) == 0
