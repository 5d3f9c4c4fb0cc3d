from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from erp_sync.ingress import extensions
from erp_sync.ingress.storefront import create_api_app
from erp_sync.shared.models import Media, Order, ProductGroup, StockHold, StockLevel, Variant
from tests.support.storefront import api_client

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def add_product(session, sku="IPH15-128-BLK", *, variant_active=True, group_active=True):
    session.add(ProductGroup(product_group_id="PG-1001", group_name="iPhone 15", description="<p>Full HTML...</p>",
                             tax_hsn="85171300", is_active=group_active,
                             category_path=["Electronics", "Smartphones", "Apple"], erp_updated_at=NOW))
    session.add(Variant(sku=sku, product_group_id="PG-1001", display_name="iPhone 15 128GB Black",
                        price=Decimal("79900"), mrp=Decimal("89900.5"), attributes={"Color": "Black"},
                        is_active=variant_active, erp_updated_at=NOW))
    session.add_all([
        Media(sku=sku, position=0, url="https://erp-cdn.com/u/iph15-blk.jpg", is_main=True, status="confirmed",
              content_type="image/jpeg", byte_size=1234, sha256="ab" * 32),
        Media(sku=sku, position=1, url="https://erp-cdn.com/u/iph15-blk-back.jpg", status="failed",
              failure_reason="HTTP 404"),
    ])
    session.commit()


def hold(session, sku, quantity, order_id="ORD-WEB-1001", released=False):
    session.add(Order(order_id=order_id, order_date=NOW, customer_ref="CUST-555"))
    session.flush()
    session.add(StockHold(order_id=order_id, sku=sku, quantity=quantity,
                          released_at=NOW if released else None, release_reason="erp_figure" if released else None))
    session.commit()


def test_inventory_shows_erp_figure_minus_open_holds(api, committed_session):
    # given the ERP says 49 and two orders hold 3 (one more hold already released)
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=49, erp_as_of=NOW))
    committed_session.commit()
    hold(committed_session, "IPH15-128-BLK", 2, "ORD-1")
    hold(committed_session, "IPH15-128-BLK", 1, "ORD-2")
    hold(committed_session, "IPH15-128-BLK", 5, "ORD-3", released=True)

    answer = api.get("/api/v1/inventory/IPH15-128-BLK")

    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["sku"], body["erp_quantity"], body["reserved"], body["available"]) == ("IPH15-128-BLK", 49, 3, 46)
    assert body["updated_at"]


def test_available_never_goes_below_zero(api, committed_session):
    committed_session.add(StockLevel(sku="LAST-ONE", erp_quantity=1, erp_as_of=NOW))
    committed_session.commit()
    hold(committed_session, "LAST-ONE", 2)

    assert api.get("/api/v1/inventory/LAST-ONE").get_json()["available"] == 0


def test_unknown_sku_is_404(api, committed_session):
    for path in ("/api/v1/inventory/NOPE", "/api/v1/products/NOPE"):
        answer = api.get(path)
        assert answer.status_code == 404
        assert "NOPE" in answer.get_json()["error"]


def test_product_shows_prices_as_two_decimal_strings_with_group_media_and_stock(api, committed_session):
    add_product(committed_session)
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=50, erp_as_of=NOW))
    committed_session.commit()

    body = api.get("/api/v1/products/IPH15-128-BLK").get_json()

    assert (body["price"], body["mrp"]) == ("79900.00", "89900.50")
    assert body["attributes"] == {"Color": "Black"}
    assert body["is_active"] is True
    assert body["available"] == 50
    assert body["group"]["category_hierarchy"] == ["Electronics", "Smartphones", "Apple"]
    assert [(m["url"], m["is_main"], m["status"]) for m in body["media"]] == [
        ("https://erp-cdn.com/u/iph15-blk.jpg", True, "confirmed"),
        ("https://erp-cdn.com/u/iph15-blk-back.jpg", False, "failed"),
    ]
    assert body["media"][1]["failure_reason"] == "HTTP 404"


def test_product_of_an_inactive_group_is_inactive_and_not_for_sale(api, committed_session):
    add_product(committed_session, group_active=False)
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=50, erp_as_of=NOW))
    committed_session.commit()

    body = api.get("/api/v1/products/IPH15-128-BLK").get_json()

    assert body["is_active"] is False
    assert body["available"] == 0


def test_stock_history_lists_every_figure_newest_first_with_its_event(api, committed_session):
    from erp_sync.shared.models import StockChange

    for n, (outcome, quantity) in enumerate([("applied", 50), ("applied", 49), ("stale", 48), ("duplicate", 49)]):
        committed_session.add(StockChange(sku="IPH15-128-BLK", event_id=f"evt_{n}", kind="absolute",
                                          quantity=quantity, resulting_quantity=49, location_id="WH-MAIN",
                                          reason="POS_SALE", erp_timestamp=NOW, outcome=outcome))
        committed_session.commit()

    body = api.get("/api/v1/inventory/IPH15-128-BLK/history").get_json()

    assert [(c["event_id"], c["outcome"]) for c in body["changes"]] == [
        ("evt_3", "duplicate"), ("evt_2", "stale"), ("evt_1", "applied"), ("evt_0", "applied")
    ]
    assert body["changes"][0]["location_id"] == "WH-MAIN"
    assert api.get("/api/v1/inventory/IPH15-128-BLK/history?limit=2").get_json()["changes"][1]["event_id"] == "evt_2"
    assert api.get(f"/api/v1/inventory/IPH15-128-BLK/history?limit={'0' * 5000}2").status_code == 200
    # 5,000 digits: past what int() converts, and no 500 for it
    for bad in ("0", "1001", "abc", "", "2.5", "-1", "1_0", "1" * 5000, "0" * 5000):
        answer = api.get(f"/api/v1/inventory/IPH15-128-BLK/history?limit={bad}")
        assert (answer.status_code, answer.get_json()["details"]) == (400, [{"field": "limit", "message": "expected 1 to 1000"}]), bad[:10]
    assert api.get("/api/v1/inventory/NOPE/history").status_code == 404


def test_stock_history_pages_reach_every_figure_once_oldest_last(api, committed_session):
    from erp_sync.shared.models import StockChange

    # given seven figures of a SKU, the third and fourth newest recorded in the same instant (a
    # page ends between them), and a figure of another SKU
    for n in range(7):
        committed_session.add(StockChange(sku="PAGED-1", event_id=f"evt_p{n}", kind="absolute", quantity=n,
                                          resulting_quantity=n, erp_timestamp=NOW, outcome="applied",
                                          recorded_at=NOW + timedelta(seconds=n - (n == 4))))
    committed_session.add(StockChange(sku="PAGED-2", event_id="evt_other", kind="absolute", quantity=1,
                                      resulting_quantity=1, erp_timestamp=NOW, outcome="applied"))
    committed_session.commit()

    # when the history is read three at a time, each page from the last one's next_before
    pages, url = [], "/api/v1/inventory/PAGED-1/history?limit=3"
    while url:
        body = api.get(url).get_json()
        pages.append([change["event_id"] for change in body["changes"]])
        url = f"/api/v1/inventory/PAGED-1/history?limit=3&before={body['next_before']}" if body["next_before"] else ""

    # then the pages hold every figure once, newest first, and the last says none are older
    assert pages == [["evt_p6", "evt_p5", "evt_p4"], ["evt_p3", "evt_p2", "evt_p1"], ["evt_p0"]]
    exact = api.get("/api/v1/inventory/PAGED-1/history?limit=7").get_json()
    assert (len(exact["changes"]), exact["next_before"]) == (7, None)
    # and a cursor of another SKU's, or of nothing, or no whole number, is a 400 naming `before`
    other = committed_session.scalar(select(StockChange.id).where(StockChange.sku == "PAGED-2"))
    for bad in (str(other), "99999999", "0", "abc", "-1", "9" * 20, str(2**63)):
        answer = api.get(f"/api/v1/inventory/PAGED-1/history?before={bad}")
        assert (answer.status_code, answer.get_json()["details"][0]["field"]) == (400, "before"), bad
    # and an unknown SKU is a 404, whatever the cursor
    assert api.get(f"/api/v1/inventory/NOPE/history?before={other}").status_code == 404


def test_a_stock_read_whose_database_connection_was_lost_answers_503_and_the_next_one_reads(
        api, api_app, committed_session, db_engine):
    # given a SKU read once, and PostgreSQL then ending the connection that read it (a restart, a failover)
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=49, erp_as_of=NOW))
    committed_session.commit()
    assert api.get("/api/v1/inventory/IPH15-128-BLK").status_code == 200
    with api_app.extensions["erp_sync.engine"].connect() as connection:  # the pool's one connection
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with db_engine.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar_one()

    # when the storefront reads it again, then it is told to retry, not served an error page
    lost = api.get("/api/v1/inventory/IPH15-128-BLK")
    assert lost.status_code == 503
    assert int(lost.headers["Retry-After"]) > 0
    assert "unavailable" in lost.get_json()["error"]
    # and the read after that is served on a new connection
    assert api.get("/api/v1/inventory/IPH15-128-BLK").get_json()["erp_quantity"] == 49


def test_read_api_answers_503_with_retry_after_when_the_database_is_down(settings_factory, broker):
    app = create_api_app(settings_factory(database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere"))
    try:
        for path in ("/api/v1/inventory/SKU-1", "/api/v1/products/SKU-1", "/api/v1/orders/ORD-1"):
            answer = api_client(app).get(path)
            assert answer.status_code == 503, path
            assert int(answer.headers["Retry-After"]) > 0
            assert "unavailable" in answer.get_json()["error"]
    finally:
        app.extensions["erp_sync.publisher"].close()


def test_a_sku_ending_in_history_is_answered_its_own_stock_not_another_skus_history(api, committed_session):
    from erp_sync.shared.models import StockChange

    # given SKU "ODD/history" with a figure of 7, and SKU "ODD" with a history of its own
    committed_session.add(StockLevel(sku="ODD/history", erp_quantity=7, erp_as_of=NOW))
    committed_session.add(StockChange(sku="ODD", event_id="evt_odd", kind="absolute", quantity=3,
                                      resulting_quantity=3, erp_timestamp=NOW, outcome="applied"))
    committed_session.commit()

    # when the storefront reads the stock of "ODD/history", as the contract spells it
    answer = api.get("/api/v1/inventory/ODD%2Fhistory")

    # then it gets that SKU's stock, not ODD's history
    assert answer.status_code == 200
    assert (answer.get_json()["sku"], answer.get_json()["erp_quantity"]) == ("ODD/history", 7)


def test_a_read_kept_waiting_by_a_locked_table_is_told_to_retry_after_the_lock_timeout(settings_factory, broker,
                                                                                   committed_session, db_engine):
    # given the API with a lock timeout of a third of a second, and a migration holding stock_levels
    app = create_api_app(settings_factory(database_lock_timeout_ms=300))
    committed_session.add(StockLevel(sku="IPH15-128-BLK", erp_quantity=49, erp_as_of=NOW))
    committed_session.commit()
    try:
        with db_engine.connect() as migrating:
            migrating.execute(text("LOCK TABLE stock_levels IN ACCESS EXCLUSIVE MODE"))

            # when the storefront reads the SKU's stock meanwhile
            answer = api_client(app).get("/api/v1/inventory/IPH15-128-BLK")
            migrating.rollback()

        # then it is told to retry, not held for as long as the migration takes
        assert answer.status_code == 503
        assert int(answer.headers["Retry-After"]) > 0
        # and once the lock is gone, the read is served
        assert api_client(app).get("/api/v1/inventory/IPH15-128-BLK").get_json()["erp_quantity"] == 49
    finally:
        extensions.close(app)


def test_a_statement_of_the_api_running_past_its_timeout_is_ended_by_postgresql(settings_factory, broker,
                                                                                monkeypatch):
    # given the API with a statement timeout of a fifth of a second
    monkeypatch.setattr(extensions, "STATEMENT_TIMEOUT_MS", 200)
    app = create_api_app(settings_factory())
    try:
        # when one of its statements would run for two seconds (a plan gone wrong on a grown table)
        with app.app_context(), extensions.engine().connect() as connection:
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(2)"))

        # then PostgreSQL ended it at the timeout, freeing its thread and connection
        assert time.monotonic() - started < 1.5
    finally:
        extensions.close(app)


def test_a_doubled_slash_is_a_json_404_not_a_redirect_to_the_hosts_header(api):
    answer = api.get("/api/v1//inventory/IPH15-128-BLK", headers={"Host": "evil.example"})

    assert answer.status_code == 404
    assert answer.is_json and "Location" not in answer.headers


def test_a_catalog_sku_without_figures_has_an_empty_history_as_its_stock_reads_0(api, committed_session):
    # given a product the ERP sent without a stock figure
    add_product(committed_session)

    # then its stock reads 0, and its history is there, empty, not a 404 for an unknown SKU
    assert api.get("/api/v1/inventory/IPH15-128-BLK").get_json()["erp_quantity"] == 0
    history = api.get("/api/v1/inventory/IPH15-128-BLK/history")
    assert (history.status_code, history.get_json()) == (200, {"sku": "IPH15-128-BLK", "changes": [], "next_before": None})
