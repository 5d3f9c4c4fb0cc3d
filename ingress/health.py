"""`GET /healthz` (the process answers) and `GET /readyz` (broker and database reachable)."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from erp_sync.ingress.extensions import engine, publisher
from erp_sync.shared.db import check_database
from erp_sync.shared.errors import ErpSyncError

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    checks: dict[str, str] = {}
    try:
        publisher().ensure_connected()
        checks["broker"] = "ok"
    except ErpSyncError as exc:
        checks["broker"] = str(exc)
    try:
        check_database(engine())
        checks["database"] = "ok"
    except ErpSyncError as exc:
        checks["database"] = str(exc)
    ready = all(state == "ok" for state in checks.values())
    if not ready:
        logger.warning("not ready: %s", checks)
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503
