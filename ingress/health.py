"""`GET /healthz` (the process answers) and `GET /readyz` (broker and database reachable)."""
from __future__ import annotations

import logging
from collections.abc import Callable

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
    checks = {"broker": _check("broker", publisher().ensure_connected),
              "database": _check("database", lambda: check_database(engine()))}
    ready = all(state == "ok" for state in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503


def _check(dependency: str, check: Callable[[], object]) -> str:
    """"ok" or "unavailable": where a dependency lives goes to the log, not to whoever asks."""
    try:
        check()
    except ErpSyncError as exc:
        logger.warning("not ready: %s: %s", dependency, exc)
        return "unavailable"
    return "ok"
