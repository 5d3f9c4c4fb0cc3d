"""The sweep's tests: a sandbox ERP holding given stock (as a fixture), and the commerce side's stock levels."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from erp_sync.sandbox_erp import SandboxConfig, create_app, shutdown
from erp_sync.shared.models import StockLevel
from tests.support.sandbox import serving

TOKEN = "reconcile-test-token"
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)


def erp_catalog(stock: dict[str, int]) -> list[dict]:
    variants = [{"sku": sku, "display_name": sku, "price": 10.0, "stock_quantity": qty, "attributes": {}}
                for sku, qty in stock.items()]
    return [{"product_group_id": "PG-REC", "group_name": "Reconcile", "category_hierarchy": ["Test"],
             "is_active": True, "variants": variants}]


@pytest.fixture
def erp(tmp_path):
    """Start a sandbox ERP holding `stock`; yields a function returning its base URL."""
    stack = []

    def start(stock: dict[str, int], snapshot_format: str = "json", ssl_context=None) -> str:
        catalog = tmp_path / f"catalog-{len(stack)}.json"
        catalog.write_text(json.dumps(erp_catalog(stock)))
        app = create_app(SandboxConfig(api_token=TOKEN, catalog_file=catalog, export_dir=tmp_path,
                                       snapshot_format=snapshot_format))  # type: ignore[arg-type]
        context = serving(app, ssl_context)
        url = context.__enter__()
        stack.append((app, context))
        return url

    start.latest_app = lambda: stack[-1][0]  # type: ignore[attr-defined]
    yield start
    for app, context in stack:
        context.__exit__(None, None, None)
        shutdown(app)


def seed_levels(session, levels: dict[str, int], as_of: datetime = LONG_AGO) -> None:
    session.add_all(StockLevel(sku=sku, erp_quantity=qty, erp_as_of=as_of) for sku, qty in levels.items())
    session.commit()


def levels(session) -> dict[str, int]:
    session.expire_all()
    return {level.sku: level.erp_quantity for level in session.scalars(select(StockLevel))}
