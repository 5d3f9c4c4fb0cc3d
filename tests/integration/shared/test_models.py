"""What the schema guarantees to the workers and the storefront, checked against PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from erp_sync.shared.db import check_database, translate_db_error
from erp_sync.shared.errors import PermanentError
from erp_sync.shared.models import Order, OrderLine, ProductGroup, StockLevel, Variant

ERP_TIME = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)


def _group(session: Session, *variants: Variant) -> None:
    group = ProductGroup(
        product_group_id="PG-1001",
        group_name="iPhone 15",
        category_path=["Electronics", "Smartphones", "Apple"],
        erp_updated_at=ERP_TIME,
    )
    group.variants.extend(variants)
    session.add(group)
    session.commit()


def _variant(sku: str, price: str = "79900.00", **attributes: str) -> Variant:
    return Variant(
        sku=sku, display_name=sku, price=Decimal(price), attributes=attributes, erp_updated_at=ERP_TIME
    )


def _order(status: str = "received") -> Order:
    return Order(order_id="ORD-WEB-1001", order_date=ERP_TIME, customer_ref="CUST-555", status=status)


def test_price_round_trips_exactly(db_session: Session) -> None:
    # given a variant priced 79900.00
    _group(db_session, _variant("IPH15-128-BLK", "79900.00"))

    # when the price is read back from the database
    price = db_session.scalar(select(Variant.price).where(Variant.sku == "IPH15-128-BLK"))

    # then it is the same Decimal, digit for digit
    assert isinstance(price, Decimal)
    assert str(price) == "79900.00"


def test_order_line_of_zero_quantity_is_refused_for_good(db_session: Session) -> None:
    # given an order with a line of quantity 0
    order = _order()
    order.lines.append(OrderLine(line_no=1, sku="IPH15-128-BLK", quantity=0, unit_price=Decimal("79900.00")))
    db_session.add(order)

    # when it is written
    with pytest.raises(IntegrityError) as refused:
        db_session.flush()

    # then the database names the rule, and the error is one to park, not retry
    assert "ck_order_lines_quantity_positive" in str(refused.value)
    assert isinstance(translate_db_error(refused.value), PermanentError)


def test_unknown_order_status_is_refused(db_session: Session) -> None:
    db_session.add(_order(status="shipped"))

    with pytest.raises(IntegrityError, match="ck_orders_status"):
        db_session.flush()


def test_stock_can_arrive_before_the_catalog(db_session: Session) -> None:
    # given no variant for the SKU
    # when its stock figure is stored
    db_session.add(StockLevel(sku="NOT-IN-CATALOG", erp_quantity=49, erp_as_of=ERP_TIME))
    db_session.commit()

    # then it is kept
    stock = db_session.scalar(select(StockLevel).where(StockLevel.sku == "NOT-IN-CATALOG"))
    assert stock is not None and stock.erp_quantity == 49


def test_variants_filter_by_attribute(db_session: Session) -> None:
    # given a black and a blue variant
    _group(
        db_session,
        _variant("IPH15-128-BLK", Color="Black", Storage="128GB"),
        _variant("IPH15-128-BLU", Color="Blue", Storage="128GB"),
    )

    # when the storefront filters by colour
    skus = db_session.scalars(select(Variant.sku).where(Variant.attributes.contains({"Color": "Black"}))).all()

    # then only the black one matches
    assert skus == ["IPH15-128-BLK"]


def test_check_database_passes_on_a_reachable_database(db_engine: Engine) -> None:
    check_database(db_engine)
