"""The storefront's read API (`erp-sync api`): stock, products and orders, behind a Bearer token."""
from __future__ import annotations

import logging

from flask import Flask, current_app, request

from erp_sync.ingress import console, openapi, orders_api, read_api
from erp_sync.ingress.bearer import bearer_token_matches
from erp_sync.ingress.console_auth import ConsoleCredentials
from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.flask_app import new_app, with_routes
from erp_sync.ingress.identifiers import IdentifierConverter
from erp_sync.shared.settings import Settings, load_settings

# The orchestrator's probes carry no token; neither answer says anything about the shop. Nor does
# the published contract.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
_TOKENS = "erp_sync.api_tokens"
logger = logging.getLogger(__name__)
# The console's replay form is the only body the API takes: a few fields. Bodies are read before the
# token is checked, so the webhook's 5 MiB here let clients without a token fill the pod's memory.
MAX_BODY_BYTES = 16 * 1024


def create_api_app(settings: Settings | None = None) -> Flask:
    """The storefront's app; refuses to be built without STOREFRONT_API_TOKEN."""
    config = settings or load_settings()
    tokens = config.storefront_tokens()
    app = new_app(config)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions[_TOKENS] = tokens
    logger.info("operator console at /console: %s", ConsoleCredentials.login_described(config))
    app.url_map.converters["identifier"] = IdentifierConverter
    app.before_request(_require_token)
    return with_routes(app, openapi.api_document(), read_api.bp, orders_api.bp, console.bp)


def api_tokens(app: Flask) -> tuple[bytes, ...]:
    """The Bearer tokens the storefront's app accepts (STOREFRONT_API_TOKEN), for whatever answers its requests."""
    tokens: tuple[bytes, ...] = app.extensions[_TOKENS]
    return tokens


def _require_token() -> None:
    if request.path in OPEN_PATHS or request.path == console.bp.url_prefix or request.path.startswith(
            f"{console.bp.url_prefix}/"):
        return  # the console checks its own credentials (a path under it that is no page: 404)
    if not bearer_token_matches(api_tokens(current_app), request.headers.get("Authorization")):
        raise ApiError(401, "missing or invalid Authorization: Bearer token",
                       headers={"WWW-Authenticate": 'Bearer realm="erp-sync storefront API"'})
