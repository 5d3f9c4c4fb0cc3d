"""The OpenAPI 3.1 documents of the two HTTP edges, and `GET /openapi.json` serving an app's own.

Two documents, one per app, rather than one with two servers: the ERP and the storefront are
different audiences behind different ports and credentials, and the same path (`/metrics`) is
open on the door but needs the storefront's token on the API. Each document describes exactly
what its own process answers. The webhook's body schema is generated from the pydantic models
that validate it, so the contract cannot drift from the code.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

from flask import Blueprint, Response, current_app, jsonify
from pydantic import Field, TypeAdapter

from erp_sync.ingress import openapi_schemas as schemas
from erp_sync.ingress.openapi_schemas import Schema
from erp_sync.shared.erp_events import ErpEvent
from erp_sync.shared.fields import IDENTIFIER_LENGTH

OPENAPI_VERSION = "3.1.0"
DOCUMENT_VERSION = "1"
# `make openapi` writes them; a unit test fails when they differ from what the code generates.
FILES = {"ingress": "docs/openapi/ingress.json", "api": "docs/openapi/api.json"}

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(current_app.extensions["erp_sync.openapi"])


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: Schema, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
_ERROR = _ref("Error")
_HEALTH: dict[str, Any] = {"get": {
    "summary": "The process answers (liveness); no credential.", "operationId": "healthz", "security": [],
    "responses": {"200": _json("Alive.", schemas.HEALTH)},
}}
_READY: dict[str, Any] = {"get": {
    "summary": "Broker and database reachable (readiness); no credential.", "operationId": "readyz", "security": [],
    "parameters": [{
        "name": "needs", "in": "query", "required": False,
        "description": "Check only these dependencies (comma-separated), as a readiness probe of a process "
                       "that serves with them alone: `broker` for the ERP's door, `database` for the storefront's reads.",
        "schema": {"type": "string", "pattern": "^(broker|database)(,(broker|database))*$"},
    }],
    "responses": {"200": _json("Ready.", schemas.READINESS),
                  "400": _json("`needs` names something else.", _ERROR),
                  "503": _json("A dependency is down; `checks` says which.", schemas.READINESS)},
}}
_OPENAPI: dict[str, Any] = {"get": {
    "summary": "This document; no credential.", "operationId": "openapi", "security": [],
    "responses": {"200": _json("The OpenAPI document.", {"type": "object"})},
}}


def _metrics(extra: dict[str, Any]) -> dict[str, Any]:
    return {"get": {
        "summary": "Prometheus metrics (text exposition format).", "operationId": "metrics",
        "responses": {
            "200": {"description": "The metrics. With the database or the broker unavailable, still 200: the "
                                   "figures read from it are left out and its `erp_sync_..._metrics_up` is 0.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            **extra,
        },
    }}


def event_schemas() -> tuple[Schema, dict[str, Schema]]:
    """The webhook body's schema and the component schemas it refers to, from the validating models."""
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[ErpEvent, Field(discriminator="event_type")])
    generated = adapter.json_schema(mode="validation", ref_template="#/components/schemas/{model}")
    components = generated.pop("$defs")
    return generated, components


def ingress_document() -> dict[str, Any]:
    """The ERP's door (`erp-sync ingress`): the webhook and the probes."""
    event, event_components = event_schemas()
    webhook = {"post": {
        "summary": "One ERP event (catalog.update or inventory.change), signed.",
        "operationId": "receiveErpEvent",
        "parameters": [{
            "name": "X-ERP-Signature", "in": "header", "required": True,
            "description": "Lowercase hex HMAC-SHA256 of the exact raw body with the shared secret; "
                           "a `sha256=` prefix is accepted.",
            "schema": {"type": "string", "pattern": "^(sha256=)?[0-9a-fA-F]{64}$"},
        }],
        "requestBody": {"required": True, "content": {"application/json": {"schema": event}}},
        "responses": {
            "202": _json("Stored on the broker (confirmed).", schemas.ACCEPTED),
            "400": _json("Invalid JSON, payload or timestamp; `details` names the fields.", _ERROR),
            "401": _json("Missing or wrong signature.", _ERROR),
            "408": _json("The body did not arrive within HTTP_READ_TIMEOUT_S; the connection is closed. "
                         "Nothing was stored: resend.", _ERROR),
            "413": _json("Body over the limit.", _ERROR),
            "415": _json("Content-Type is not application/json, or the body is compressed (a Content-Encoding "
                         "other than identity).", _ERROR),
            "503": _json("Not stored durably (broker down or queue at its bound); resend after Retry-After.",
                         _ERROR, _RETRY_AFTER),
        },
    }}
    return _document(
        "erp-sync ingress (the ERP's door)",
        "Faces the ERP only: signed webhooks in, and the orchestrator's probes.",
        {"/webhooks/erp": webhook, "/healthz": _HEALTH, "/readyz": _READY,
         "/metrics": _metrics({}), "/openapi.json": _OPENAPI},
        {"Error": schemas.ERROR, **event_components},
        security_schemes={},
    )


def api_document() -> dict[str, Any]:
    """The storefront's read API (`erp-sync api`), behind `Authorization: Bearer`."""
    unauthorized = {"401": _json("Missing or invalid Bearer token.", _ERROR, {
        "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}})}
    unavailable = {"503": _json("The commerce database is unavailable, or the API is busy: try again after Retry-After.",
                                _ERROR, _RETRY_AFTER)}

    def read(operation_id: str, summary: str, name: str, body: Schema, extra: dict[str, Any] | None = None,
             parameters: list[Schema] | None = None) -> dict[str, Any]:
        return {"get": {
            "summary": summary, "operationId": operation_id,
            "parameters": [_identifier(name), *(parameters or [])],
            "responses": {"200": _json("Found.", body), **(extra or {}), **unauthorized,
                          "404": _json(f"No such {name}.", _ERROR), **unavailable},
        }}

    limit = {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}
    before = {"name": "before", "in": "query", "required": False,
              "description": "The figures recorded before this one: a `next_before` of the SKU's history.",
              "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
    return _document(
        "erp-sync storefront API",
        "Faces the storefront only: stock, products and orders, every request with "
        "`Authorization: Bearer <STOREFRONT_API_TOKEN>` except the probes and this document.",
        {
            "/api/v1/inventory/{sku}": read("inventory", "What the storefront may sell of a SKU.", "sku",
                                            _ref("Stock")),
            "/api/v1/inventory/{sku}/history": read(
                "inventoryHistory", "The stock figures received for the SKU, newest first, a page at a time (none "
                "yet: empty).", "sku", schemas.STOCK_HISTORY,
                {"400": _json("`limit` outside 1 to 1000, or `before` no whole number or no figure of the SKU.",
                              _ERROR)}, [limit, before]),
            "/api/v1/products/{sku}": read("product", "The variant with its group, prices, attributes and media.",
                                           "sku", schemas.PRODUCT),
            "/api/v1/orders/{order_id}": read("order", "Where an order stands with the ERP.", "order_id",
                                              schemas.ORDER),
            "/healthz": _HEALTH, "/readyz": _READY, "/metrics": _metrics(unauthorized), "/openapi.json": _OPENAPI,
        },
        {"Error": schemas.ERROR, "Stock": schemas.STOCK},
        security_schemes={"storefrontToken": {"type": "http", "scheme": "bearer"}},
    )


def _identifier(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True,
            "description": "May hold slashes; an id no column could hold (a control character, over "
                           f"{IDENTIFIER_LENGTH} characters) names nothing: 404.",
            "schema": {"type": "string", "minLength": 1, "maxLength": IDENTIFIER_LENGTH}}


def _document(title: str, description: str, paths: dict[str, Any], components: dict[str, Schema],
              security_schemes: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": DOCUMENT_VERSION, "description": description},
        "paths": paths,
        "components": {"schemas": components},
    }
    if security_schemes:
        document["components"]["securitySchemes"] = security_schemes
        document["security"] = [{name: []} for name in security_schemes]
    return document


DOCUMENTS = {"ingress": ingress_document, "api": api_document}


def render(document: dict[str, Any]) -> str:
    """The document as it is kept in the repository: stable key order, one trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(root: Path) -> None:
    """Rewrite the repository's copies under `root` (`make openapi`)."""
    for name, build in DOCUMENTS.items():
        path = root / FILES[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(build()), encoding="utf-8")


if __name__ == "__main__":
    write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
