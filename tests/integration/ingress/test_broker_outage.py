from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from werkzeug.serving import make_server

from erp_sync.ingress import create_app
from tests.support import services
from tests.support.amqp import drain
from tests.support.factories import encode, inventory_event, signed_headers
from tests.support.settings import WEBHOOK_SECRET
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def broker_proxy(broker):
    parts = urlsplit(broker)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_client(settings_factory, broker, broker_proxy):
    parts = urlsplit(broker)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{broker_proxy.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    app = create_app(settings_factory(amqp_url=url, publish_confirm_timeout_s=2.0))
    yield app.test_client()
    app.extensions["erp_sync.publisher"].close()


def post(client, event):
    body = encode(event)
    return client.post("/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET))


def test_broker_down_gives_503_with_retry_after_and_recovers_by_itself(proxied_client, broker, broker_proxy):
    # given a working ingress
    first = inventory_event()
    assert post(proxied_client, first).status_code == 202

    # when the broker goes away
    broker_proxy.cut()
    lost = inventory_event()
    response = post(proxied_client, lost)

    # then the ERP is told to retry later
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert proxied_client.get("/readyz").status_code == 503

    # and once the broker is back, the next requests get through without a restart
    broker_proxy.restore()
    deadline = time.monotonic() + 10
    while (response := post(proxied_client, lost)).status_code != 202 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert response.status_code == 202
    assert proxied_client.get("/readyz").status_code == 200
    ids = [m.properties.message_id for m in drain(broker, "erp-sync.inventory")]
    assert ids == [first["event_id"], lost["event_id"]]


def test_unreachable_broker_at_start_gives_503(settings_factory, broker):
    app = create_app(settings_factory(amqp_url="amqp://guest:guest@127.0.0.1:9/%2F"))

    response = post(app.test_client(), inventory_event())

    assert response.status_code == 503
    assert response.get_json()["error"]
    assert app.test_client().get("/readyz").get_json()["checks"]["database"] == "ok"


@pytest.mark.slow
def test_nothing_answered_202_is_missing_after_1000_concurrent_posts(settings_factory, broker, amqp_vhost):
    # given the ingress on a real HTTP server
    app = create_app(settings_factory())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks/erp"
    events = [inventory_event(sku=f"SKU-{i % 37}", new_quantity=i) for i in range(1000)]

    def send(index_event):
        index, event = index_event
        if index == 400:
            # the broker drops every connection mid-run, as in a broker restart
            services.close_all_connections(amqp_vhost)
        body = encode(event)
        try:
            answer = requests.post(url, data=body, headers=signed_headers(body, WEBHOOK_SECRET), timeout=30)
        except requests.RequestException:
            return event["event_id"], None
        return event["event_id"], answer.status_code

    # when 1,000 events are posted 50 at a time
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(send, enumerate(events)))
    finally:
        server.shutdown()
        app.extensions["erp_sync.publisher"].close()

    # then every event answered 202 is on the queue, and only 202 and 503 were answered
    accepted = {event_id for event_id, status in results if status == 202}
    assert {status for _, status in results} <= {202, 503}
    assert len(accepted) >= 900
    landed = {m.properties.message_id for m in drain(broker, "erp-sync.inventory")}
    assert accepted - landed == set()
