"""What both apps are made of: settings, publisher and engine, error answers, probes, /metrics, /openapi.json."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response

from erp_sync.ingress import errors, extensions, health, metrics, openapi
from erp_sync.shared.settings import Settings


class _App(Flask):
    def make_default_options_response(self) -> Response:
        # Flask's own is a 200 with an empty text/html body; the methods are all an OPTIONS has to say.
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def new_app(config: Settings) -> Flask:
    """An app holding what its requests need and answering errors as JSON; no routes yet."""
    app = _App("erp_sync.ingress")
    # `//` in a path was a 308 to a Location built from the request's Host header, with an HTML
    # body: a 404 in JSON, as for any other path no route serves.
    app.url_map.merge_slashes = False
    extensions.init_app(app, config)
    errors.init_app(app)
    return app


def with_routes(app: Flask, document: dict[str, Any], *blueprints: Blueprint) -> Flask:
    """The app serving `blueprints`, then the probes, /metrics and `document` as /openapi.json."""
    for blueprint in (*blueprints, health.bp, metrics.bp, openapi.bp):
        app.register_blueprint(blueprint)
    app.extensions["erp_sync.openapi"] = document
    return app
