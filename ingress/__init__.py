"""The ingress: a thin Flask app that takes the ERP's signed webhooks and puts them on RabbitMQ."""
from __future__ import annotations

from flask import Flask

from erp_sync.shared.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    """The app factory (gunicorn: `ingress:create_app()`)."""
    from erp_sync.ingress import (
        errors,
        extensions,
        health,
        metrics,
        orders_api,
        read_api,
        webhooks,
    )

    config = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.webhook_max_body_bytes
    extensions.init_app(app, config)
    errors.init_app(app)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(read_api.bp)
    app.register_blueprint(orders_api.bp)
    return app
