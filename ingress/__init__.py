"""The HTTP edges, one app per audience.

`create_app`: the ERP's door (`erp-sync ingress`), which takes signed webhooks and puts them on
RabbitMQ. `storefront.create_api_app`: the storefront's read API (`erp-sync api`), behind its
own token. Each runs in processes of its own, so neither's load or outage reaches the other.
"""
from __future__ import annotations

from flask import Flask

from erp_sync.shared.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    """The ERP's door: the webhook and the probes."""
    from erp_sync.ingress import errors, extensions, health, metrics, openapi, webhooks
    from erp_sync.ingress.webhook_tally import WebhookTallies

    config = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.webhook_max_body_bytes
    extensions.init_app(app, config)
    # Fails at start, naming ERP_WEBHOOK_SECRET, when no secret is configured.
    app.extensions["erp_sync.secrets"] = config.webhook_secrets()
    app.extensions["erp_sync.webhook_tallies"] = WebhookTallies(extensions.engine_of(app))
    errors.init_app(app)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.extensions["erp_sync.openapi"] = openapi.ingress_document()
    app.register_blueprint(openapi.bp)
    return app
