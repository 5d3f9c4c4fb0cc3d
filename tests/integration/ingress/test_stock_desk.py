"""The API's stock read on the event loop: Flask's answer, byte for byte, or Flask's own."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import make_url, text

from erp_sync.ingress import stock_desk
from erp_sync.ingress.stock_desk import StockDesk
from erp_sync.shared.models import Order, StockHold, StockLevel
from tests.support.settings import API_TOKEN
from tests.support.tcp_proxy import TcpProxy

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
AUTHORIZED = {"authorization": f"Bearer {API_TOKEN}"}
LOCK_TIMEOUT_MS = 300


class Protocol:
    """What granian's HTTP protocol is asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list[tuple[str, str]], bytes]] = []

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.sent.append((status, headers, body))


class Bridge:
    """The WSGI bridge, noting each request handed to Flask."""

    def __init__(self) -> None:
        self.handed: list[str] = []

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    async def __rsgi__(self, scope: SimpleNamespace, protocol: Protocol) -> None:
        self.handed.append(scope.path)


class Headers:
    """A request's headers as granian gives them: lower-case names, a name possibly more than once."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def get(self, name: str, default: str | None = None) -> str | None:
        return next((value for key, value in self._pairs if key == name), default)

    def __contains__(self, name: str) -> bool:
        return any(key == name for key, _ in self._pairs)


def request(path: str, headers: dict[str, str] | Headers, method: str = "GET", query: str = "") -> SimpleNamespace:
    pairs = headers if isinstance(headers, Headers) else Headers(list(headers.items()))
    return SimpleNamespace(proto="http", method=method, path=path, query_string=query, headers=pairs)


class Served:
    """A desk on the one event loop of its worker, as granian runs it, and its bridge."""

    def __init__(self, desk: StockDesk, bridge: Bridge) -> None:
        self.desk, self.bridge = desk, bridge
        self.loop = asyncio.new_event_loop()
        desk.__rsgi_init__(self.loop)

    def run(self, scope: SimpleNamespace) -> Protocol:
        protocol = Protocol()
        self.loop.run_until_complete(self.desk.__rsgi__(scope, protocol))
        return protocol

    def stop(self) -> None:
        self.desk.__rsgi_del__(self.loop)
        self.loop.close()


@pytest.fixture
def served(api_app, settings):
    bridge = Bridge()
    served = Served(StockDesk(api_app, bridge, settings.database_url, pool_size=2,
                                     lock_timeout_ms=LOCK_TIMEOUT_MS), bridge)  # type: ignore[arg-type]
    yield served
    served.stop()


def test_a_sku_with_a_figure_is_answered_here_with_flasks_own_bytes(served, api, committed_session):
    # given the ERP says 49 of a SKU and an order holds 3
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=49, erp_as_of=NOW))
    committed_session.add(Order(order_id="ORD-1", order_date=NOW, customer_ref="CUST-555"))
    committed_session.flush()
    committed_session.add(StockHold(order_id="ORD-1", sku="IPH15-128-BLK", quantity=3))
    committed_session.commit()

    # when the storefront reads it
    protocol = served.run(request("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED))

    # then it is answered here, as Flask answers the same read
    flask = api.get("/api/v1/inventory/IPH15-128-BLK")
    [(status, headers, body)] = protocol.sent
    assert (status, body) == (flask.status_code, flask.data)
    assert dict(headers) == dict(flask.headers)
    assert flask.get_json()["available"] == 46
    assert served.bridge.handed == []


@pytest.mark.parametrize(("path", "headers", "method", "query"), [
    ("/api/v1/inventory/NO-FIGURE", AUTHORIZED, "GET", ""),  # a catalog-only or unknown SKU: 200 or 404 by Flask
    ("/api/v1/inventory/IPH15-128-BLK", {}, "GET", ""),  # no token: Flask's 401
    ("/api/v1/inventory/IPH15-128-BLK", {"authorization": "Bearer wrong-token-0123456789"}, "GET", ""),
    ("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED, "POST", ""),  # Flask's 405
    ("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED, "GET", "limit=5"),
    ("/api/v1/inventory/IPH15-128-BLK/history", AUTHORIZED, "GET", ""),  # another route
    ("/api/v1/inventory/" + "X" * 300, AUTHORIZED, "GET", ""),  # no storable SKU: Flask's 404
    ("/api/v1/products/IPH15-128-BLK", AUTHORIZED, "GET", ""),
    # Flask gets the two joined into one, and refuses it
    ("/api/v1/inventory/IPH15-128-BLK", Headers([("authorization", f"Bearer {API_TOKEN}"),
                                                 ("authorization", "Bearer another-token-0123456789")]), "GET", ""),
], ids=["no figure", "no token", "wrong token", "POST", "query string", "history", "too long", "products",
        "two tokens"])
def test_every_other_request_goes_to_flask(served, committed_session, path, headers, method, query):
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=49, erp_as_of=NOW))
    committed_session.commit()

    protocol = served.run(request(path, headers, method, query))

    assert (protocol.sent, served.bridge.handed) == ([], [path])


def test_a_read_the_database_fails_goes_to_flask(api_app):
    # given a desk whose database cannot be reached
    bridge = Bridge()
    served = Served(StockDesk(api_app, bridge, "postgresql+psycopg://postgres@127.0.0.1:9/nowhere",  # type: ignore[arg-type]
                              pool_size=1, lock_timeout_ms=LOCK_TIMEOUT_MS), bridge)
    try:
        # when the storefront reads a SKU, then Flask answers it (503 with Retry-After, its own rule)
        protocol = served.run(request("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED))
    finally:
        served.stop()

    assert (protocol.sent, bridge.handed) == ([], ["/api/v1/inventory/IPH15-128-BLK"])


def test_a_read_held_by_a_locked_table_goes_to_flask_after_the_lock_timeout(served, committed_session, db_engine):
    # given a SKU with a figure, the desk's pool open, and a migration holding stock_levels
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=49, erp_as_of=NOW))
    committed_session.commit()
    assert served.run(request("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED)).sent[0][0] == 200
    protocol = Protocol()
    with db_engine.connect() as migrating:
        migrating.execute(text("LOCK TABLE stock_levels IN ACCESS EXCLUSIVE MODE"))

        # when the storefront reads it meanwhile
        read = served.desk.__rsgi__(request("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED), protocol)
        served.loop.run_until_complete(asyncio.wait_for(read, timeout=10))
        migrating.rollback()

    # then the read is given up at the lock timeout and left to Flask (its 503), not held by the lock
    assert (protocol.sent, served.bridge.handed) == ([], ["/api/v1/inventory/IPH15-128-BLK"])


def test_a_read_answered_here_writes_no_log_line(served, committed_session, caplog):
    # given a SKU with a figure, and the API logging at INFO as it does by default
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=49, erp_as_of=NOW))
    committed_session.commit()
    caplog.set_level("INFO")
    served.run(request("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED))  # the pool opens on the first read
    caplog.clear()

    # when the storefront reads it again, then it is answered and nothing is logged for it
    assert served.run(request("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED)).sent[0][0] == 200
    assert caplog.records == []


def test_reads_come_back_here_after_an_outage_longer_than_the_pool_retries(api_app, settings, committed_session,
                                                                            monkeypatch, caplog):
    # given a desk reading through a link to the database that can be cut, its pool giving a lost
    # connection up after 0.3 s of failed retries (in production, 300 s), and a SKU with a figure
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=49, erp_as_of=NOW))
    committed_session.commit()
    monkeypatch.setattr(stock_desk, "LEFT_TO_FLASK_AFTER_A_FAILURE_S", 0.5)
    database = make_url(settings.database_url)
    link = TcpProxy(database.host or "127.0.0.1", database.port or 5432)
    bridge = Bridge()
    served = Served(StockDesk(api_app, bridge, database.set(host="127.0.0.1", port=link.port)  # type: ignore[arg-type]
                              .render_as_string(hide_password=False), pool_size=2, lock_timeout_ms=LOCK_TIMEOUT_MS,
                              reconnect_timeout_s=0.3), bridge)
    read = request("/api/v1/inventory/IPH15-128-BLK", AUTHORIZED)
    try:
        answered = [Protocol(), Protocol()]

        async def two_at_once() -> None:
            await asyncio.gather(*(served.desk.__rsgi__(read, sent) for sent in answered))
        served.loop.run_until_complete(two_at_once())
        assert [sent.sent[0][0] for sent in answered] == [200, 200]  # two at once: two connections

        # when the database is away long enough for the pool to give a connection up
        link.cut()
        assert served.run(read).sent == []  # Flask's to answer (its 503)
        served.loop.run_until_complete(asyncio.sleep(2.5))  # the pool's retries run on the loop
        assert "reconnection attempt in pool" in caplog.text, "the pool never gave its connection up"

        # then once it is back, the first read after the pause is answered here, on a connection opened since
        link.restore()
        served.loop.run_until_complete(asyncio.sleep(0.5))
        protocol = served.run(read)
    finally:
        served.stop()
        link.close()

    assert [status for status, _, _ in protocol.sent] == [200]
    assert bridge.handed == [read.path]  # only the read during the outage went to Flask
