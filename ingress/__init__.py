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
    from erp_sync.ingress import extensions, openapi, webhooks
    from erp_sync.ingress.flask_app import new_app, with_routes
    from erp_sync.ingress.webhook_tally import WebhookTallies

    config = settings or load_settings()
    # Fails at start, naming ERP_WEBHOOK_SECRET, when no secret is configured.
    secrets = config.webhook_secrets()
    app = new_app(config)
    app.config["MAX_CONTENT_LENGTH"] = config.webhook_max_body_bytes
    app.extensions["erp_sync.secrets"] = secrets
    app.extensions["erp_sync.webhook_tallies"] = WebhookTallies(extensions.engine_of(app))
    return with_routes(app, openapi.ingress_document(), webhooks.bp)
