"""The sandbox ERP's app factory: state, webhook dispatcher, blueprints, error rendering."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from erp_sync.sandbox_erp import admin, api, media, snapshot
from erp_sync.sandbox_erp.config import SandboxConfig
from erp_sync.sandbox_erp.delivery import Dispatcher
from erp_sync.sandbox_erp.errors import ApiError
from erp_sync.sandbox_erp.faults import Faults, after_spec_request, before_spec_request
from erp_sync.sandbox_erp.ledger import Ledger
from erp_sync.sandbox_erp.seed import seed_store
from erp_sync.sandbox_erp.store import Store

logger = logging.getLogger("sandbox_erp")

_SPEC_BLUEPRINTS = {api.bp.name, snapshot.bp.name}


def create_app(config: SandboxConfig | None = None) -> Flask:
    """A sandbox ERP with its own store, seeded, and its dispatcher running when webhooks are configured."""
    config = config or SandboxConfig()
    app = Flask("sandbox_erp")
    store = Store(config.database)
    with store.transaction() as conn:
        seeded = seed_store(conn, config.catalog_file, config.generate_groups, config.variants_per_group,
                            config.random_seed)
    logger.info("sandbox ERP store %s ready, %d SKUs seeded", config.database, seeded)
    dispatcher = Dispatcher(store, config)
    app.extensions.update({
        "sandbox_erp.config": config,
        "sandbox_erp.store": store,
        "sandbox_erp.dispatcher": dispatcher,
        "sandbox_erp.ledger": Ledger(store, config, dispatcher),
        "sandbox_erp.faults": Faults(),
        "sandbox_erp.export_dir": config.export_dir or Path(tempfile.mkdtemp(prefix="sandbox-erp-exports-")),
    })
    for blueprint in (api.bp, snapshot.bp, admin.bp, media.bp):
        app.register_blueprint(blueprint)
    app.before_request(_faults_on_spec_endpoints)
    app.after_request(_lost_answers_on_spec_endpoints)
    app.register_error_handler(ApiError, _render_api_error)
    app.register_error_handler(HTTPException, _render_http_error)
    if config.webhook_url and config.webhook_secret and config.start_dispatcher:
        dispatcher.start()
    return app


def set_public_url(app: Flask, url: str) -> None:
    """Where this sandbox is reachable, for the media URLs it puts in catalog.update events."""
    ledger: Ledger = app.extensions["sandbox_erp.ledger"]
    ledger.public_url = url.rstrip("/")


def shutdown(app: Flask) -> None:
    """Stop the dispatcher and close the store."""
    dispatcher: Dispatcher = app.extensions["sandbox_erp.dispatcher"]
    dispatcher.stop()
    store: Store = app.extensions["sandbox_erp.store"]
    store.close()


def _faults_on_spec_endpoints() -> Response | None:
    return before_spec_request() if request.blueprint in _SPEC_BLUEPRINTS else None


def _lost_answers_on_spec_endpoints(response: Response) -> Response:
    return after_spec_request(response) if request.blueprint in _SPEC_BLUEPRINTS else response


def _render_api_error(error: ApiError) -> tuple[Response, int]:
    if error.status >= 400:
        logger.info("%s %s answered %d: %s", request.method, request.path, error.status, error.reason)
    return jsonify(error.to_dict()), error.status


def _render_http_error(error: HTTPException) -> tuple[Response, int]:
    return jsonify({"error": error.description or error.name}), error.code or 500
