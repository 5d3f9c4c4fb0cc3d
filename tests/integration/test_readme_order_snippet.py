"""The README's storefront snippet runs as printed and puts its order where the orders worker reads."""
from __future__ import annotations

import ast

from erp_sync.shared.orders import decode_order
from erp_sync.shared.topology import WORK_QUEUES
from tests.support.amqp import drain
from tests.support.readme import order_snippet as readme_snippet


def test_the_readme_order_snippet_imports_from_the_installed_root_only():
    # Run from the repository root, `shared.orders` would import too; installed, only erp_sync exists.
    modules = [node.module for node in ast.walk(ast.parse(readme_snippet())) if isinstance(node, ast.ImportFrom)]

    assert modules and all(m == "decimal" or m.startswith("erp_sync.") for m in modules), modules


def test_the_readme_order_snippet_publishes_a_valid_order(broker, monkeypatch):
    # when the snippet runs as printed, with AMQP_URL (as `.erp-sync.env` sets it) naming this run's vhost
    monkeypatch.setenv("AMQP_URL", broker)
    exec(compile(readme_snippet(), "README.md", "exec"), {})

    # then the order is on the orders worker's queue: persistent, JSON, its id as message id
    landed = drain(broker, WORK_QUEUES["orders"].name)
    assert len(landed) == 1
    assert landed[0].properties.message_id == "ORD-WEB-1001"
    assert landed[0].properties.delivery_mode == 2
    assert landed[0].properties.content_type == "application/json"
    order = decode_order(landed[0].body)
    assert [(line.sku, line.quantity, str(line.unit_price)) for line in order.line_items] == [
        ("SKU-0000001-01", 1, "899.00")
    ]
