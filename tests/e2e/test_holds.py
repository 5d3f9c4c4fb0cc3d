"""Holds end when the ERP's own figure for the order is applied: the sandbox ERP fires it over HTTP at a served door."""
from __future__ import annotations

import pytest

from erp_sync.shared.orders import publish_order
from tests.support.holds import (
    START,
    firing_sandbox,
    inventory,
    seed,
    store_sales_beside_online_orders,
    watching_for_oversell,
    without_its_clock,
)
from tests.support.orders import SKU, order, wait_status
from tests.support.waiting import wait_for


@pytest.fixture(params=[("s", False), ("ms", False), ("s", True)], ids=["s", "ms", "s-named"])
def erp_clock(request) -> tuple[str, bool]:
    """Stamped in whole seconds or milliseconds; "named": its figure for an order names it (`reference_id`)."""
    return request.param


@pytest.fixture
def sandbox_erp(erp_clock, settings, tmp_path):
    precision, named = erp_clock
    with firing_sandbox(settings, tmp_path, timestamp_precision=precision, reference_ids=named) as sandbox:
        yield sandbox


@pytest.fixture
def orders_worker(order_settings, sandbox_erp, erp_clock):
    """The orders worker's settings for this ERP: told so (ERP_NAMES_ORDERS) when it names its orders."""
    _, named = erp_clock
    return order_settings(erp_base_url=sandbox_erp.url, erp_names_orders=named)


def test_the_erps_figure_for_an_order_ends_its_hold(ingress, storefront, start_workers, orders_worker):
    # given the ERP's figure of 50 and both workers
    start_workers("inventory")
    seed(ingress)
    start_workers("orders", with_settings=orders_worker)

    # when an order of 2 syncs and the ERP fires its figure of 48
    publish_order(storefront, order("ORD-HOLD-1", quantity=2))
    wait_status(ingress, "ORD-HOLD-1", "synced")

    # then the shop shows the ERP's figure, the order counted once
    wait_for(lambda: inventory(ingress) | {"updated_at": None}
             == {"sku": SKU, "erp_quantity": 48, "reserved": 0, "available": 48, "updated_at": None}, 10.0)


def test_a_figure_before_the_order_is_marked_synced_still_ends_its_hold(ingress, storefront, start_workers,
                                                                        orders_worker):
    # given the inventory worker applies figures while the orders worker is not yet running
    start_workers("inventory")
    seed(ingress)
    publish_order(storefront, order("ORD-HOLD-2", quantity=2))

    # when the ERP takes the order and its figure is applied, and only then the push is recorded
    # (the orders worker's answer commits after the ERP fired: its figure may well come first)
    start_workers("orders", with_settings=orders_worker)
    wait_status(ingress, "ORD-HOLD-2", "synced")

    # then the hold ends whichever came first
    wait_for(lambda: inventory(ingress)["reserved"] == 0 and inventory(ingress)["available"] == 48, 10.0)


def test_concurrent_store_sales_end_every_hold_and_named_figures_never_one_early(
        ingress, storefront, start_workers, orders_worker, sandbox_erp, erp_clock):
    # given 50 in stock and both workers
    start_workers("inventory")
    seed(ingress)
    start_workers("orders", with_settings=orders_worker)

    # when 10 store sales run beside 10 online orders, watched throughout
    with watching_for_oversell(sandbox_erp, ingress) as breaches:
        store_sales_beside_online_orders(sandbox_erp, storefront, ingress, 10)
        # then at the end the shop shows the ERP's figure, every hold ended
        wait_for(lambda: inventory(ingress)["reserved"] == 0 and inventory(ingress)["available"] == START - 20, 10.0)

    # and, where the ERP names its orders and erp-sync is told so (ERP_NAMES_ORDERS), it never showed
    # more than the ERP had (the sandbox sends its webhooks one at a time, in order: two figures of one
    # second arriving swapped would still fool the tie rule, docs/orders.md). Otherwise the clocks end
    # holds, and cannot promise that, in milliseconds no more than in whole seconds: the mark comes
    # from the answer's `Date`, whole seconds, so a sale
    # stamped in the second of an order's receipt but made before it ends the order's hold, and the
    # shop shows the order's quantity too many until the ERP's figure for the order arrives
    # (docs/orders.md, "the one remaining risk"). One CI run in about thirty caught that in whole
    # seconds, one loaded run in ms, and one with named figures before ERP_NAMES_ORDERS.
    _, names_the_order = erp_clock
    if names_the_order:
        assert breaches == []


@pytest.fixture
def early_ending_erp(settings, tmp_path):
    """An ERP without a readable `Date` and slow webhooks: ERP_CLOCK_SKEW_S of an hour then ends holds early."""
    with firing_sandbox(settings, tmp_path, webhook_delay_s=1.0) as sandbox:
        without_its_clock(sandbox)
        yield sandbox


def test_the_watcher_reports_holds_ended_early(ingress, storefront, start_workers, order_settings, early_ending_erp):
    # given holds that end on any figure stamped within the hour before the push (a skew margin far
    # too wide), and the ERP's figure for each order on its way for a while
    start_workers("inventory")
    seed(ingress)
    start_workers("orders", with_settings=order_settings(erp_base_url=early_ending_erp.url, erp_clock_skew_s=3600))

    # when the same sales and orders run, watched the same way until the ERP's last figure is in
    # (a hold ended early shows until then: the last ones' windows outlast the orders' sync)
    with watching_for_oversell(early_ending_erp, ingress) as breaches:
        store_sales_beside_online_orders(early_ending_erp, storefront, ingress, 10)
        wait_for(lambda: inventory(ingress)["reserved"] == 0 and inventory(ingress)["available"] == START - 20, 30.0)

    # then the watcher saw the shop offer units the ERP had already sold
    assert breaches != []
