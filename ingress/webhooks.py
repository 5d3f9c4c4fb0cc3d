"""`POST /webhooks/erp`: verify, validate, publish, answer.

The rules live here once, for both ways the webhook is served: the Flask view below (the app's
own route, which the WSGI test client and any WSGI server see) and the door's native handler
(ingress/door.py), which answers the same request on granian's event loop.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.extensions import publisher
from erp_sync.ingress.metrics import PUBLISH_SECONDS, WEBHOOKS_ACCEPTED, WEBHOOKS_REJECTED
from erp_sync.ingress.signature import verify_signature
from erp_sync.ingress.webhook_tally import ACCEPTED, REJECTED, WebhookTallies
from erp_sync.shared.erp_events import ErpEvent, decode_event, event_age_problem
from erp_sync.shared.errors import BrokerUnavailable, MessageDecodeError, PublishRejected, QueueFull
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.receipt_stamp import receipt_headers
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import EVENTS_EXCHANGE

logger = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)

WEBHOOK_PATH = "/webhooks/erp"
UNENCODED = frozenset({"", "identity"})


@dataclass(frozen=True)
class WebhookRules:
    """What judging one webhook takes: the secrets, the settings, the door's tally."""

    secrets: tuple[bytes, ...]
    config: Settings
    tallies: WebhookTallies

    @classmethod
    def of(cls, app: Flask) -> WebhookRules:
        return cls(app.extensions["erp_sync.secrets"], app.extensions["erp_sync.settings"],
                   app.extensions["erp_sync.webhook_tallies"])

    def reject(self, status: int, reason: str, message: str, **kwargs: Any) -> ApiError:
        WEBHOOKS_REJECTED.labels(reason=reason).inc()
        self.tallies.count(REJECTED, reason)
        return ApiError(status, message, **kwargs)

    def admit(self, raw: bytes, signature: str | None, mimetype: str,
              content_encoding: str | None = None) -> tuple[ErpEvent, OutgoingMessage]:
        """Verify and validate; the event and the message to publish, or the ApiError to answer."""
        coding = (content_encoding or "").strip().lower()
        if coding not in UNENCODED:
            # Read as JSON, a gzipped body was a 400 saying "not UTF-8": nothing there told its sender why.
            raise self.reject(415, "content_encoding", f"Content-Encoding {coding!r:.40} is not accepted: send the "
                                                       "body uncompressed, signed as sent")
        if not signature:
            raise self.reject(401, "signature", "missing X-ERP-Signature: the lowercase hex HMAC-SHA256 of the raw "
                                                "body with the shared secret")
        if not verify_signature(self.secrets, raw, signature):
            raise self.reject(401, "signature", "X-ERP-Signature does not match the body: sign the exact bytes sent "
                                                "(HMAC-SHA256 with the shared secret, lowercase hex)")
        if mimetype != "application/json":
            raise self.reject(415, "content_type", "Content-Type must be application/json")
        try:
            event = decode_event(raw)
        except MessageDecodeError as exc:
            raise self.reject(400, "invalid", str(exc), details=exc.details) from exc
        problem = event_age_problem(
            event, datetime.now(UTC), self.config.webhook_max_age_s, self.config.webhook_max_future_skew_s
        )
        if problem:
            raise self.reject(400, "timestamp", "event outside the accepted time window",
                              details=[{"field": "timestamp", "message": problem}])
        # The raw body goes on unchanged: the workers see exactly what the ERP signed. The receipt
        # stamp settles a tie of ERP timestamps whichever worker applies it (shared/receipt_stamp.py).
        return event, OutgoingMessage(EVENTS_EXCHANGE, event.event_type, raw, message_id=event.event_id,
                                      headers=receipt_headers())

    def too_large(self) -> ApiError:
        """The answer to a body over WEBHOOK_MAX_BODY_BYTES; read no further. Counted and logged: the
        ERP's retries of it never succeed, and a drift alert's search for lost webhooks starts here."""
        limit = self.config.webhook_max_body_bytes
        logger.warning("a webhook refused: its body is over WEBHOOK_MAX_BODY_BYTES (%d)", limit)
        return self.reject(413, "too_large", f"the body is over the limit of {limit} bytes (WEBHOOK_MAX_BODY_BYTES): "
                                             "send smaller events, such as catalog groups of fewer variants")

    def refused(self, event: ErpEvent, error: BrokerUnavailable | PublishRejected) -> ApiError:
        """The answer to a publish the broker did not confirm."""
        retry_after = {"Retry-After": str(self.config.unavailable_retry_after_s)}
        if isinstance(error, QueueFull):
            # Backpressure: the worker is far behind; the ERP retries later (spec 7.1), nothing is lost.
            logger.warning("event %s refused: its queue is at its bound (%s)", event.event_id, error)
            return self.reject(503, "queue_full", "the event's queue is full; retry later", headers=retry_after)
        logger.error("event %s not stored on the broker: %s", event.event_id, error)
        return self.reject(503, "unavailable", "the event could not be stored durably; retry later",
                           headers=retry_after)

    def accepted(self, event: ErpEvent, publish_s: float) -> dict[str, str]:
        """Count a confirmed webhook; the body of its 202."""
        PUBLISH_SECONDS.observe(publish_s)
        WEBHOOKS_ACCEPTED.labels(event_type=event.event_type).inc()
        self.tallies.count(ACCEPTED, event.event_type)
        return {"status": "accepted", "event_id": event.event_id}


@bp.post(WEBHOOK_PATH)
def receive_erp_event() -> ResponseReturnValue:
    rules = WebhookRules.of(current_app)
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge as exc:
        raise rules.too_large() from exc
    event, message = rules.admit(raw, request.headers.get("X-ERP-Signature"), request.mimetype,
                                 request.headers.get("Content-Encoding"))
    started = time.perf_counter()
    try:
        publisher().publish(message)
    except (BrokerUnavailable, PublishRejected) as exc:
        raise rules.refused(event, exc) from exc
    return jsonify(rules.accepted(event, time.perf_counter() - started)), 202
