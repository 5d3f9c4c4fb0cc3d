"""The operator console in a real browser (chromium), against the API process and real workers, broker and database.

Real data first: webhooks through the ERP's door, an order the orders worker cannot push (the ERP is
down), a message the inventory worker parks, one parked by hand that will apply when replayed, and
two sweeps against a sandbox ERP (one drifting, one held). Then the console's figures are checked
against what was done, a screenshot is taken (the README's, with SCREENSHOT=docs/console.png), and a
replay is clicked.
"""
from __future__ import annotations

import os
import uuid

import pika
import pytest
from sqlalchemy import delete, func, select

from erp_sync.ingress import create_app, extensions
from erp_sync.shared.models import Order, StockLevel, WebhookTally
from erp_sync.shared.orders import publish_order
from erp_sync.shared.topology import WORK_QUEUES
from erp_sync.workers.reconcile import run_sweep
from tests.support import cli
from tests.support.amqp import drain
from tests.support.browser import chromium
from tests.support.factories import encode, inventory_event, signed_headers
from tests.support.orders import order
from tests.support.parking import park, publish_unreadable
from tests.support.reconcile import TOKEN as ERP_TOKEN
from tests.support.reconcile import seed_levels
from tests.support.settings import API_TOKEN, WEBHOOK_SECRET
from tests.support.waiting import wait_for

# The README's picture is refreshed on purpose, not by every run: SCREENSHOT=docs/console.png.
SCREENSHOT = os.environ.get("SCREENSHOT")
PASSWORD = "console-password-of-the-test"


@pytest.fixture
def api_process(settings):
    port = cli.free_port()
    process = cli.start("api", "--port", str(port), DATABASE_URL=settings.database_url, AMQP_URL=settings.amqp_url,
                        STOREFRONT_API_TOKEN=API_TOKEN, CONSOLE_USER="ops", CONSOLE_PASSWORD=PASSWORD, API_WORKERS="1")
    cli.wait_for_port(port, process)
    yield f"http://127.0.0.1:{port}"
    cli.stop(process)


def parked_count(amqp_url: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        queue = WORK_QUEUES["inventory"].parking_queue
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def test_the_console_shows_the_night_and_replays_a_parked_message(
    settings_factory, settings, broker, start_workers, storefront, committed_session, db_engine, erp, api_process,
    tmp_path,
):
    tag = uuid.uuid4().hex[:6].upper()
    with db_engine.begin() as connection:
        connection.execute(delete(WebhookTally))

    # given the inventory worker, and the orders worker facing an ERP that does not answer
    orders_settings = settings_factory(erp_base_url="http://127.0.0.1:1", erp_api_token=ERP_TOKEN,
                                       order_retry_interval_s=600, erp_quick_retries=1, erp_connect_timeout_s=0.5)
    start_workers("inventory")
    start_workers("orders", with_settings=orders_settings)

    # and webhooks through the ERP's door: two accepted, one with a wrong signature
    door = create_app(settings)
    client = door.test_client()
    for sku in (f"CON-A-{tag}", f"CON-B-{tag}"):
        body = encode(inventory_event(sku=sku, new_quantity=10, quantity_change=None))
        assert client.post("/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET)).status_code == 202
    forged = encode(inventory_event(sku=f"CON-C-{tag}"))
    assert client.post("/webhooks/erp", data=forged, headers={"X-ERP-Signature": "0" * 64,
                                                              "Content-Type": "application/json"}).status_code == 401
    extensions.close(door)  # writes its tally

    # and an order the ERP cannot take: it waits as pending_sync
    order_id = f"ORD-CON-{tag}"
    publish_order(storefront, order(order_id, quantity=1))

    def order_status():
        committed_session.expire_all()
        return committed_session.scalar(select(Order.status).where(Order.order_id == order_id))

    wait_for(lambda: order_status() == "pending_sync", timeout=30)

    # and a message the inventory worker parks, and one parked earlier that is fine now
    garbage_id, fine_id, fine_sku = f"evt-garbage-{tag}", f"evt-fine-{tag}", f"CON-R-{tag}"
    publish_unreadable(broker, garbage_id)
    wait_for(lambda: parked_count(broker) == 1)
    fine = inventory_event(sku=fine_sku, new_quantity=9, quantity_change=None) | {"event_id": fine_id}
    park(broker, "inventory", fine_id, reason="DatabaseUnavailable: gave up after 25 attempts", attempts=25,
         body=encode(fine))

    # and two sweeps: one that finds drift and corrects it, one held by its change limit
    seed_levels(committed_session, {f"CON-S-{tag}": 10, f"CON-T-{tag}": 5})
    limits_off = {f"reconcile_max_{limit}_share": 1.0 for limit in ("changed", "zeroed", "missing")}
    drifting = run_sweep(settings_factory(erp_base_url=erp({f"CON-S-{tag}": 10, f"CON-T-{tag}": 3}),
                                          erp_api_token=ERP_TOKEN, **limits_off))
    held = run_sweep(settings_factory(erp_base_url=erp({f"CON-S-{tag}": 4, f"CON-T-{tag}": 3}),
                                      erp_api_token=ERP_TOKEN, **limits_off | {"reconcile_max_changed_share": 0.0}))
    assert (drifting.status, held.status) == ("succeeded", "held")
    with db_engine.connect() as connection:
        statuses = dict(connection.execute(select(Order.status, func.count()).group_by(Order.status)).all())

    # when the operator opens the console in a browser, with the console's credentials
    with chromium() as browser:
        context = browser.new_context(http_credentials={"username": "ops", "password": PASSWORD},
                                      viewport={"width": 1280, "height": 900})
        page = context.new_page()
        answer = page.goto(f"{api_process}/console")
        assert answer is not None and answer.status == 200

        # then it shows the queues with their consumers and parked messages
        inventory = page.locator('[data-queue="inventory"]')
        assert inventory.locator('[data-figure="consumers"]').inner_text() == "1"
        assert inventory.locator('[data-figure="parked"]').inner_text() == "2"
        assert page.locator('[data-queue="orders"] [data-figure="consumers"]').inner_text() == "1"
        assert page.locator('[data-figure="parked-link"]').inner_text().startswith("2 parked:")
        # orders by status, with the oldest waiting
        pending = page.locator('[data-status="pending_sync"]')
        assert pending.locator('[data-figure="count"]').inner_text() == str(statuses["pending_sync"])
        oldest = committed_session.scalar(select(Order.order_id).where(Order.status == "pending_sync")
                                          .order_by(Order.created_at, Order.order_id).limit(1))
        assert pending.locator('[data-figure="oldest"]').inner_text().startswith(f"{oldest}, for ")
        # the webhooks of the last hour
        assert page.locator('[data-webhooks="accepted:inventory.change"] [data-figure="count"]').inner_text() == "2"
        assert page.locator('[data-webhooks="rejected:signature"] [data-figure="count"]').inner_text() == "1"
        # the sweeps, the held one with its reason, and a bar for each in the drift chart
        assert page.locator(f'tr[data-run="{held.run_id}"] [data-figure="status"]').inner_text() == "held"
        assert page.locator(f'tr[data-run="{drifting.run_id}"] [data-figure="mismatched"]').inner_text() == \
            str(drifting.mismatched)
        assert page.locator(f'svg rect[data-run="{drifting.run_id}"]').count() == 1
        assert page.locator(f'svg rect[data-run="{held.run_id}"]').count() == 1
        page.screenshot(path=SCREENSHOT or str(tmp_path / "console.png"), full_page=True)

        # when the operator follows the link to the parked messages
        page.locator('[data-figure="parked-link"] a').click()

        # then each is listed with its reason
        assert "MessageDecodeError" in page.locator(f'[data-parked="{garbage_id}"]').inner_text()
        assert "gave up after 25 attempts" in page.locator(f'[data-parked="{fine_id}"]').inner_text()

        # when the operator replays the message that is fine now
        page.locator(f'[data-parked="{fine_id}"] button').click()

        # then the console says so, back on the overview, which counts the other still parked; its
        # list shows only the other; and the worker applies the replayed event
        assert fine_id in page.locator('[data-figure="replayed"]').inner_text()
        assert page.locator('[data-figure="parked-link"]').inner_text().startswith("1 parked:")
        page.locator('[data-figure="parked-link"] a').click()
        assert page.locator(f'[data-parked="{fine_id}"]').count() == 0
        assert page.locator(f'[data-parked="{garbage_id}"]').count() == 1
        context.close()

    def replayed_quantity():
        committed_session.expire_all()
        return committed_session.scalar(select(StockLevel.erp_quantity).where(StockLevel.sku == fine_sku))

    wait_for(lambda: replayed_quantity() == 9)
    assert [m.properties.message_id for m in drain(broker, WORK_QUEUES["inventory"].parking_queue)] == [garbage_id]
