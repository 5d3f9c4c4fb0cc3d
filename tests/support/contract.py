"""Fuzzing an app against its published OpenAPI document with schemathesis, as its clients would call it."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import hypothesis
import schemathesis
from flask import Flask
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from erp_sync.ingress.signature import sign
from erp_sync.shared.models import (
    Media,
    Order,
    OrderLine,
    ProductGroup,
    StockChange,
    StockHold,
    StockLevel,
    Variant,
)
from tests.support.factories import catalog_event, inventory_event

WEBHOOK_PATH = "/webhooks/erp"
# No 5xx; every status, content type and header documented; every body matches its schema.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


class Client:
    """What the hook adds to each generated request: the ERP's signature, the storefront's token."""

    def __init__(self, webhook_secret: str, api_token: str) -> None:
        self.secret = webhook_secret.encode()
        self.token = api_token
        self.signed: set[bytes] = set()  # every webhook body sent, to compare with what reached a queue

    def before_call(self, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
        headers = dict(case.headers or {})
        headers["Authorization"] = f"Bearer {self.token}"
        if case.operation.path == WEBHOOK_PATH and not isinstance(case.body, NotSet):
            # Serialise here so the signature covers the exact bytes sent; `data` replaces schemathesis' own.
            # A negative case may be raw bytes (not JSON at all): those are signed as they are.
            raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
            kwargs["data"] = raw
            headers["X-ERP-Signature"] = sign(self.secret, raw)
            self.signed.add(raw)
        case.headers = headers


@contextmanager
def signing_hook(webhook_secret: str, api_token: str) -> Iterator[Client]:
    """Register the `before_call` hook for the block (schemathesis only calls it from its global registry)."""
    client = Client(webhook_secret, api_token)

    def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
        client.before_call(case, kwargs)

    schemathesis.hook("before_call")(before_call)
    try:
        yield client
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)


def seed_resources(session: Session) -> dict[str, str]:
    """A product with media and stock history, held by an order: ids the fuzzer cannot guess, so that
    the read API's 200 bodies are checked against their schemas too. Returns the ids by path parameter."""
    sku, order_id, at = "IPH-15/128-BLK", "ORD-WEB-1", datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    session.add(ProductGroup(product_group_id="PG-1", group_name="iPhone 15", description="<p>HTML</p>",
                             tax_hsn="85171300", category_path=["Electronics", "Phones"], erp_updated_at=at))
    session.add(Variant(sku=sku, product_group_id="PG-1", display_name="iPhone 15 128GB", price=Decimal("799"),
                        mrp=Decimal("899.5"), attributes={"Color": "Black", "storage_gb": 128, "5g": True},
                        erp_updated_at=at))
    session.add_all([
        Media(sku=sku, position=0, url="https://cdn.example/a.jpg", is_main=True, status="confirmed",
              content_type="image/jpeg", byte_size=1234, sha256="ab" * 32),
        Media(sku=sku, position=1, url="https://cdn.example/b.jpg", status="failed", failure_reason="HTTP 404"),
        StockLevel(sku=sku, erp_quantity=49, erp_as_of=at),
        StockChange(sku=sku, event_id="evt-1", kind="absolute", quantity=49, resulting_quantity=49,
                    outcome="applied", erp_timestamp=at),
        StockChange(sku=sku, event_id="evt-2", kind="delta", delta=-2, location_id="WH-1", reason="sale",
                    outcome="stale", erp_timestamp=at),
        Order(order_id=order_id, order_date=at, customer_ref="CUST-1", warehouse_id="WH-1"),
    ])
    session.flush()
    session.add_all([OrderLine(order_id=order_id, line_no=1, sku=sku, quantity=2, unit_price=Decimal("799")),
                     StockHold(order_id=order_id, sku=sku, quantity=2)])
    session.commit()
    return {"sku": sku, "order_id": order_id}


def fuzz(app: Flask, max_examples: int, known: dict[str, str] | None = None) -> list[str]:
    """Call every operation of the app's own /openapi.json with generated data, valid and not, and once
    more with `known` ids in its path; return the operations fuzzed. A failed check raises with the
    request that broke it."""
    return _fuzz(schemathesis.openapi.from_wsgi("/openapi.json", app), max_examples, known)


def fuzz_url(base_url: str, max_examples: int, known: dict[str, str] | None = None) -> list[str]:
    """The same against a live process: its /openapi.json, called over HTTP."""
    return _fuzz(schemathesis.openapi.from_url(f"{base_url}/openapi.json"), max_examples, known)


def _fuzz(schema: Any, max_examples: int, known: dict[str, str] | None) -> list[str]:
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()
        # An operation with no input has nothing to make invalid.
        has_input = any(len(part) for part in (operation.path_parameters, operation.headers, operation.query,
                                                operation.body))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[: 2 if has_input else 1]:
            _run(operation.as_strategy(generation_mode=mode), max_examples)
        if operation.path == WEBHOOK_PATH:
            # The spec's own examples, so that valid events surely reach the broker whatever was generated.
            for event in (catalog_event(), inventory_event()):
                operation.Case(body=event, media_type="application/json").call_and_validate(checks=CHECKS)
        names = {parameter.name for parameter in operation.path_parameters}
        if known and names and names <= set(known):
            fixed = {name: known[name] for name in names}
            _run(operation.as_strategy(path_parameters=fixed), max_examples)
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    return fuzzed


def _run(strategy: Any, max_examples: int) -> None:
    @hypothesis.settings(max_examples=max_examples, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=strategy)
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    call()
