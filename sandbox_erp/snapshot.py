"""Spec section 5: every stock level, streamed as JSON, as CSV, or as the URL of a CSV file."""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, send_file, stream_with_context
from flask.typing import ResponseReturnValue

from erp_sync.sandbox_erp.auth import require_bearer
from erp_sync.sandbox_erp.catalog import stock_chunks
from erp_sync.sandbox_erp.config import SNAPSHOT_FORMATS, SandboxConfig
from erp_sync.sandbox_erp.errors import ApiError
from erp_sync.sandbox_erp.store import Store

bp = Blueprint("sandbox_snapshot", __name__, url_prefix="/api/v1/inventory")


def _config() -> SandboxConfig:
    config: SandboxConfig = current_app.extensions["sandbox_erp.config"]
    return config


def json_chunks(store: Store, chunk_rows: int) -> Iterator[str]:
    """`[{"sku": ..., "qty": ...}, ...]`, one text piece per chunk of rows."""
    yield "["
    separator = ""
    for rows in stock_chunks(store, chunk_rows):
        piece = ",".join(json.dumps({"sku": sku, "qty": qty}) for sku, qty in rows)
        yield separator + piece
        separator = ","
    yield "]"


def csv_chunks(store: Store, chunk_rows: int) -> Iterator[str]:
    """A `sku,qty` header, then one text piece per chunk of rows."""
    yield "sku,qty\r\n"
    for rows in stock_chunks(store, chunk_rows):
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        yield buffer.getvalue()


def _signature(name: str, expires: int) -> str:
    return hmac.new(_config().api_token.encode(), f"{name}:{expires}".encode(), hashlib.sha256).hexdigest()


def _export(store: Store) -> str:
    config = _config()
    folder: Path = current_app.extensions["sandbox_erp.export_dir"]
    name = f"snapshot-{uuid.uuid4().hex}.csv"
    partial = folder / f".{name}.part"
    with partial.open("w", encoding="utf-8", newline="") as out:
        for piece in csv_chunks(store, config.snapshot_chunk_rows):
            out.write(piece)
    partial.rename(folder / name)  # the URL never serves a half-written file
    expires = int(time.time() + config.export_url_ttl_s)
    return f"{request.host_url}api/v1/inventory/snapshot/files/{name}?expires={expires}&signature={_signature(name, expires)}"


@bp.get("/snapshot")
def snapshot() -> ResponseReturnValue:
    """All stock levels in the form asked for (`?format=`) or configured."""
    config = _config()
    require_bearer(config.api_token)
    form = request.args.get("format", config.snapshot_format)
    if form not in SNAPSHOT_FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(SNAPSHOT_FORMATS)}")
    store: Store = current_app.extensions["sandbox_erp.store"]
    if form == "url":
        return jsonify({"url": _export(store)})
    chunks = json_chunks if form == "json" else csv_chunks
    mimetype = "application/json" if form == "json" else "text/csv"
    return Response(stream_with_context(chunks(store, config.snapshot_chunk_rows)), mimetype=mimetype)


@bp.get("/snapshot/files/<name>")
def snapshot_file(name: str) -> ResponseReturnValue:
    """A CSV export, for a URL signed by this sandbox and not yet expired."""
    expires = request.args.get("expires", "")
    given = request.args.get("signature", "")
    if not expires.isdigit() or int(expires) < time.time() or not hmac.compare_digest(given, _signature(name, int(expires))):
        raise ApiError(403, "missing, wrong or expired signature")
    folder: Path = current_app.extensions["sandbox_erp.export_dir"]
    path = folder / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise ApiError(404, f"no export {name}")
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=name)
