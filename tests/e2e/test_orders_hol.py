"""No head-of-line blocking in the orders push: one order's import hanging at the ERP holds up no other order."""
from __future__ import annotations

import pytest

from erp_sync.shared.orders import publish_order
from tests.support.orders import order, status_of, wait_status
from tests.support.processes import Process
from tests.support.waiting import wait_for

HANGING_SKU = "IPH15-128-BLU"  # the sandbox's imports of orders naming it hang
OTHER_SKU = "IPH15-128-BLK"


@pytest.fixture
def orders_worker(order_settings, committed_session):
    # An import hanging a minute, the worker waiting up to 30 s for it: it hangs through the whole test.
    # After `committed_session`: the orders it recorded are emptied once it is killed.
    process = Process(order_settings(erp_read_timeout_s=30), "worker", "orders")
    yield process
    print(process.output()[-4000:])  # shown when the test fails
    process.kill()


def test_an_order_reaches_the_erp_while_another_ones_import_hangs(ingress, storefront, sandbox, orders_worker):
    # given an orders worker process, and an order whose import hangs at the ERP
    sandbox.fault("slow", delay_ms=60_000, slow_skus=[HANGING_SKU])
    publish_order(storefront, order("ORD-HANGS", quantity=1, sku=HANGING_SKU))
    wait_for(lambda: sandbox.held() == 1, timeout=30)

    # when another order is placed while that import hangs
    publish_order(storefront, order("ORD-GOES", quantity=1, sku=OTHER_SKU))

    # then it reaches the ERP and is synced, while the first one's import still hangs
    wait_status(ingress, "ORD-GOES", "synced")
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-GOES"]
    assert sandbox.held() == 1 and status_of(ingress, "ORD-HANGS")["status"] == "received"

    # and once the ERP stops hanging, the first one is synced too, in the ERP once
    sandbox.fault("none")
    wait_status(ingress, "ORD-HANGS", "synced")
    assert sorted(o["order_id"] for o in sandbox.orders()) == ["ORD-GOES", "ORD-HANGS"]
    assert orders_worker.alive()
