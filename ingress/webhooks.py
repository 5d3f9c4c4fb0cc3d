"""`POST /webhooks/erp`: verify, validate, publish, answer."""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.extensions import publisher, settings, webhook_tallies
from erp_sync.ingress.metrics import PUBLISH_SECONDS, WEBHOOKS_ACCEPTED, WEBHOOKS_REJECTED
from erp_sync.ingress.signature import verify_signature
from erp_sync.ingress.webhook_tally import ACCEPTED, REJECTED
from erp_sync.shared.erp_events import decode_event, event_age_problem
from erp_sync.shared.errors import BrokerUnavailable, MessageDecodeError, PublishRejected, QueueFull
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.topology import EVENTS_EXCHANGE

logger = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


def _reject(status: int, reason: str, message: str, **kwargs: object) -> ApiError:
    WEBHOOKS_REJECTED.labels(reason=reason).inc()
    webhook_tallies().count(REJECTED, reason)
    return ApiError(status, message, **kwargs)  # type: ignore[arg-type]


@bp.post("/webhooks/erp")
def receive_erp_event() -> ResponseReturnValue:
    config = settings()
    raw = request.get_data(cache=False)
    if not verify_signature(current_app.extensions["erp_sync.secrets"], raw, request.headers.get("X-ERP-Signature")):
        raise _reject(401, "signature", "missing or invalid X-ERP-Signature")
    if request.mimetype != "application/json":
        raise _reject(415, "content_type", "Content-Type must be application/json")

    try:
        event = decode_event(raw)
    except MessageDecodeError as exc:
        raise _reject(400, "invalid", str(exc), details=exc.details) from exc
    problem = event_age_problem(
        event, datetime.now(UTC), config.webhook_max_age_s, config.webhook_max_future_skew_s
    )
    if problem:
        raise _reject(400, "timestamp", "event outside the accepted time window",
                      details=[{"field": "timestamp", "message": problem}])

    # The raw body goes on unchanged: the workers see exactly what the ERP signed.
    message = OutgoingMessage(EVENTS_EXCHANGE, event.event_type, raw, message_id=event.event_id)
    started = time.perf_counter()
    try:
        publisher().publish(message)
    except QueueFull as exc:
        # Backpressure: the worker is far behind; the ERP retries later (spec 7.1), nothing is lost.
        logger.warning("event %s refused: its queue is at its bound (%s)", event.event_id, exc)
        raise _reject(503, "queue_full", "the event's queue is full; retry later",
                      headers={"Retry-After": str(config.unavailable_retry_after_s)}) from exc
    except (BrokerUnavailable, PublishRejected) as exc:
        logger.error("event %s not stored on the broker: %s", event.event_id, exc)
        raise _reject(503, "unavailable", "the event could not be stored durably; retry later",
                      headers={"Retry-After": str(config.unavailable_retry_after_s)}) from exc
    PUBLISH_SECONDS.observe(time.perf_counter() - started)
    WEBHOOKS_ACCEPTED.labels(event_type=event.event_type).inc()
    webhook_tallies().count(ACCEPTED, event.event_type)
    return jsonify({"status": "accepted", "event_id": event.event_id}), 202
