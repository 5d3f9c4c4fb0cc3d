"""The media worker: download each image a catalog update names and confirm it on its row."""
from __future__ import annotations

import logging
from datetime import UTC, datetime

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from erp_sync.shared.consumer import Delivery, Handler
from erp_sync.shared.errors import MediaRejected, MediaUnavailable
from erp_sync.shared.internal_messages import MediaDownload
from erp_sync.workers.media_fetch import MediaFetcher
from erp_sync.shared.models.catalog import Media, MediaStatus
from erp_sync.shared.retry_policy import failed_attempts
from erp_sync.shared.settings import Settings

logger = logging.getLogger(__name__)

# After this many transient failures the image is marked failed rather than retried again.
MAX_MEDIA_ATTEMPTS = 5
MAX_REASON_CHARS = 500
def build_handler(settings: Settings) -> Handler:
    """The media worker's handler, with one fetcher (and its connection pool) for the process."""
    fetcher = MediaFetcher(
        requests.Session(),
        connect_timeout_s=settings.media_timeout_s,
        read_timeout_s=settings.media_timeout_s,
        # Each read is bounded by the timeout; this bounds a server that trickles bytes.
        total_timeout_s=3 * settings.media_timeout_s,
        max_bytes=settings.media_max_bytes,
        allow_private_networks=settings.media_allow_private_networks,
    )
    # Give up before the consumer would park the message, so the row never stays pending.
    give_up_at = min(MAX_MEDIA_ATTEMPTS, settings.max_delivery_attempts)

    def handle(delivery: Delivery, session: Session) -> None:
        attempt = failed_attempts(delivery.headers) + 1
        confirm_media(MediaDownload.decode(delivery.body), session, fetcher, attempt=attempt, give_up_at=give_up_at)

    return handle


def confirm_media(
    request: MediaDownload, session: Session, fetcher: MediaFetcher, *, attempt: int, give_up_at: int
) -> None:
    """Download the image of one media row and record the outcome on it; never commits.

    Raises:
        MediaUnavailable: a transient failure before attempt `give_up_at`, so the message is retried.
    """
    row = session.execute(select(Media.url, Media.status).where(Media.id == request.media_id)).one_or_none()
    if row is None or row.url != request.url or row.status == MediaStatus.CONFIRMED:
        # Replaced by a later catalog update, or a redelivery of a download already done.
        logger.info("media %s of %s: nothing to do", request.media_id, request.sku)
        return
    try:
        image = fetcher.fetch(request.url)
    except MediaRejected as exc:
        _record_failure(session, request, attempt, str(exc))
        return
    except MediaUnavailable as exc:
        if attempt < give_up_at:
            logger.warning("media %s of %s unavailable (attempt %d): %s", request.media_id, request.sku, attempt, exc)
            raise
        _record_failure(session, request, attempt, f"gave up after {attempt} attempts: {exc}")
        return
    _update_row(session, request, status=MediaStatus.CONFIRMED, attempts=attempt, failure_reason=None,
                content_type=image.content_type, byte_size=image.byte_size, sha256=image.sha256,
                downloaded_at=datetime.now(UTC))
    logger.info("media %s of %s confirmed: %d bytes, sha256 %s", request.media_id, request.sku,
                image.byte_size, image.sha256)


def _record_failure(session: Session, request: MediaDownload, attempt: int, reason: str) -> None:
    # A failed image never blocks its product: the reason shows in the product API instead.
    logger.warning("media %s of %s failed (%s): %s", request.media_id, request.sku, request.url, reason)
    _update_row(session, request, status=MediaStatus.FAILED, attempts=attempt,
                failure_reason=reason[:MAX_REASON_CHARS])


def _update_row(session: Session, request: MediaDownload, **values: object) -> None:
    # Guarded by url and status, so a catalog update or a duplicate that committed during the
    # download is not overwritten with this download's result.
    session.execute(
        update(Media)
        .where(Media.id == request.media_id, Media.url == request.url, Media.status != MediaStatus.CONFIRMED)
        .values(**values)
    )
