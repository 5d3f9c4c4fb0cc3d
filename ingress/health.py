"""`GET /healthz` (the process answers) and `GET /readyz` (broker and database reachable, or those `?needs=` names)."""
from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from erp_sync.ingress.answers import answer
from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.extensions import engine, publisher
from erp_sync.shared.db import check_database
from erp_sync.shared.errors import ErpSyncError

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

LIVENESS_PATH = "/healthz"
ALIVE = {"status": "ok"}
# Served on the event loop (ingress/bridge.py): the liveness probe must not wait behind request
# threads all held up, or every pod is restarted at once in a long lock.
ALIVE_ANSWER = (200, *answer(ALIVE, {}))


@bp.get(LIVENESS_PATH)
def healthz() -> ResponseReturnValue:
    return jsonify(ALIVE)


DEPENDENCIES: dict[str, Callable[[], object]] = {
    "broker": lambda: publisher().ensure_connected(),
    "database": lambda: check_database(engine()),
}


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Both dependencies, or those `?needs=` names: a readiness probe asks for what its process
    serves with, so that a database outage does not take the ERP's door out of service, nor a broker
    outage the storefront's reads."""
    checks = {dependency: _check(dependency, DEPENDENCIES[dependency]) for dependency in _needed()}
    ready = all(state == "ok" for state in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503


def _needed() -> list[str]:
    given = request.args.getlist("needs")  # `needs=broker&needs=database` as well as `needs=broker,database`
    if not given:
        return list(DEPENDENCIES)
    needed = [name for value in given for name in value.split(",")]
    unknown = [name for name in needed if name not in DEPENDENCIES]
    if unknown or not all(given):
        raise ApiError(400, f"needs is a comma-separated list of {', '.join(DEPENDENCIES)}",
                       details=[{"field": "needs", "message": f"unknown: {', '.join(unknown)[:100]!r}"}])
    return list(dict.fromkeys(needed))


def _check(dependency: str, check: Callable[[], object]) -> str:
    """"ok" or "unavailable": where a dependency lives goes to the log, not to whoever asks."""
    try:
        check()
    except ErpSyncError as exc:
        logger.warning("not ready: %s: %s", dependency, exc)
        return "unavailable"
    return "ok"
