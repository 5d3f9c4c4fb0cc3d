"""The media worker: download each image a catalog update names and confirm it on its row."""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from erp_sync.shared.consumer import Delivery, Handler
from erp_sync.shared.errors import MediaRejected, MediaUnavailable
from erp_sync.shared.internal_messages import MediaBatch, MediaDownload, decode_media_request
from erp_sync.shared.models.catalog import Media
from erp_sync.shared.models.states import MediaStatus
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.retry_policy import Retry, decide, failed_attempts
from erp_sync.shared.settings import Settings
from erp_sync.workers.host_breaker import HostBreaker, NotTried
from erp_sync.workers.media_fetch import FetchedImage, MediaFetcher, media_session
from erp_sync.workers.metrics import MEDIA_IMAGES

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
EARLIEST_GIVE_UP = 5
ATTEMPTS_KEPT_FOR_THE_DATABASE = 5
# Every confirmed row of a message in one statement; guarded by url and status as _update_rows is.
_CONFIRM = text("""
UPDATE media SET status = 'confirmed', attempts = :attempts, failure_reason = NULL, content_type = found.content_type,
                 byte_size = found.byte_size, sha256 = found.sha256, downloaded_at = :now
FROM unnest(CAST(:id AS bigint[]), CAST(:url AS text[]), CAST(:content_type AS varchar[]),
            CAST(:byte_size AS bigint[]), CAST(:sha256 AS varchar[])) AS found(id, url, content_type, byte_size, sha256)
WHERE media.id = found.id AND media.url = found.url AND media.status = 'pending'
""")


def image_attempts(max_delivery_attempts: int) -> int:
    """The attempt at which an image still failing is marked failed.

    Late: at 5 attempts (2.6 min of the default delays) an image host, or its DNS, down for minutes
    failed its images for good. Not at the consumer's last attempt, though: a message failing then
    for the database's sake (a lock timeout) is parked, and would leave its rows pending for good.
    """
    return max(min(EARLIEST_GIVE_UP, max_delivery_attempts), max_delivery_attempts - ATTEMPTS_KEPT_FOR_THE_DATABASE)


def build_handler(settings: Settings, stop: threading.Event | None = None) -> Handler:
    """The media worker's handler, with one fetcher (and its connection pool) for the process.

    Once `stop` is set, a message's downloads not begun are not begun: they go back on the queue as
    the same attempt, at once, and the message ends within its downloads under way (its grace
    period), not all of them.
    """
    fetcher = MediaFetcher(
        media_session(),
        connect_timeout_s=settings.media_timeout_s,
        read_timeout_s=settings.media_timeout_s,
        # Each read is bounded by the timeout; this bounds a server that trickles bytes.
        total_timeout_s=3 * settings.media_timeout_s,
        max_bytes=settings.media_max_bytes,
        allow_private_networks=settings.media_allow_private_networks,
        connections_per_host=settings.media_concurrency,
    )
    downloads = ThreadPoolExecutor(max_workers=settings.media_concurrency, thread_name_prefix="media-download")
    give_up_at = image_attempts(settings.max_delivery_attempts)

    def handle(delivery: Delivery, session: Session) -> list[OutgoingMessage] | None:
        attempt = failed_attempts(delivery.headers) + 1
        request = decode_media_request(delivery.body)
        if isinstance(request, MediaDownload):
            confirm_media(request, session, fetcher, attempt=attempt, give_up_at=give_up_at)
            return None
        unfinished = confirm_batch(request, session, fetcher, attempt=attempt, give_up_at=give_up_at,
                                   downloads=downloads, stop=stop)
        if unfinished is None:
            return None
        # Only the images whose server failed for now go round again; the others are recorded. Those
        # a stop left unbegun are no failure: they go back as they were.
        messages = []
        if unfinished.again is not None and unfinished.error is not None:
            retry = decide(unfinished.error, attempt - 1, settings.retry_delays_ms, settings.max_delivery_attempts)
            assert isinstance(retry, Retry), "give_up_at is below the consumer's max attempts"
            messages.append(unfinished.again.retry_message(retry.attempt, retry.delay_ms))
        if unfinished.unbegun is not None:
            messages.append(unfinished.unbegun.resume_message(attempt))
        return messages

    return handle


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A batch's images to try again after a delay (with the last failure that says why), and those
    a stop left unbegun."""

    again: MediaBatch | None = None
    error: MediaUnavailable | None = None
    unbegun: MediaBatch | None = None


@dataclass(frozen=True, slots=True)
class _Unbegun:
    """A download the worker did not begin, as it is stopping."""

    url: str


def confirm_media(
    request: MediaDownload, session: Session, fetcher: MediaFetcher, *, attempt: int, give_up_at: int
) -> None:
    """Download the image of one media row and record the outcome on it; never commits.

    Raises:
        MediaUnavailable: a transient failure before attempt `give_up_at`, so the message is retried.
    """
    unfinished = confirm_batch(MediaBatch(images=(request,)), session, fetcher, attempt=attempt, give_up_at=give_up_at)
    if unfinished is not None and unfinished.error is not None:
        raise unfinished.error


def confirm_batch(
    batch: MediaBatch, session: Session, fetcher: MediaFetcher, *, attempt: int, give_up_at: int,
    downloads: Executor | None = None, stop: threading.Event | None = None,
) -> Unfinished | None:
    """Fetch each distinct URL of the batch's still pending rows once; record the outcome on its rows.

    The downloads run on `downloads`' threads at once (one after another without it); the rows
    are written on this thread, the only one using `session`. Returns the images whose server
    failed transiently before attempt `give_up_at` (to retry), with the last such failure, and
    those not begun once `stop` was set, if any.
    """
    pending = dict(session.execute(
        select(Media.id, Media.url).where(Media.id.in_([image.media_id for image in batch.images]),
                                          Media.status == MediaStatus.PENDING)
    ).tuples().all())
    by_url: dict[str, list[MediaDownload]] = defaultdict(list)
    for image in batch.images:
        # Not pending: replaced by a later catalog update, already done, or a redelivery.
        if pending.get(image.media_id) == image.url:
            by_url[image.url].append(image)
    if len(by_url) < len(batch.images):
        logger.info("media %s: %d of %d images no longer pending, skipped", batch.message_id,
                    len(batch.images) - sum(map(len, by_url.values())), len(batch.images))
    not_tried: list[MediaDownload] = []
    unbegun: list[MediaDownload] = []
    again: list[MediaDownload] = []
    last_error: MediaUnavailable | None = None
    confirmed: list[tuple[str, list[MediaDownload], FetchedImage]] = []
    failed: list[tuple[str, int, MediaRejected | MediaUnavailable]] = []
    # An image's last attempt defers nothing for a host's failures: none is given up untried.
    last = attempt >= give_up_at
    breaker = HostBreaker(threshold=None) if last else HostBreaker()
    fetched = (downloads.map if downloads else map)(partial(_fetch, fetcher, breaker, stop), by_url)
    for (url, images), result in zip(by_url.items(), fetched, strict=True):
        if isinstance(result, FetchedImage):
            confirmed.append((url, images, result))
            continue
        if isinstance(result, _Unbegun):
            unbegun.extend(images)
            continue
        error = _record_failed(session, url, images, result, attempt, give_up_at)
        if error is not None:
            (not_tried if isinstance(error, NotTried) else again).extend(images)
            if last_error is None or not isinstance(error, NotTried):
                last_error = error  # a host's own failure says more than "not tried"
        else:
            failed.append((url, len(images), result))
    again = not_tried + again
    _confirm_rows(session, confirmed, attempt)
    _count_images(confirmed=sum(len(images) for _, images, _ in confirmed), retried=len(again),
                  failed=sum(count for _, count, _ in failed))
    logger.info("media %s: %d images confirmed", batch.message_id, sum(len(images) for _, images, _ in confirmed))
    if failed:
        url, _, reason = failed[0]
        logger.warning("media %s: %d images failed for good (attempt %d), the first %s: %s", batch.message_id,
                       sum(count for _, count, _ in failed), attempt, url, _failure_reason(reason, attempt))
    if last_error is None and not unbegun:
        return None
    if unbegun:
        logger.info("media %s: %d images not begun, the worker stopping: back on the queue", batch.message_id,
                    len(unbegun))
    return Unfinished(again=MediaBatch(images=tuple(again)) if again else None, error=last_error,
                      unbegun=MediaBatch(images=tuple(unbegun)) if unbegun else None)


def _fetch(fetcher: MediaFetcher, breaker: HostBreaker, stop: threading.Event | None,
           url: str) -> FetchedImage | MediaRejected | MediaUnavailable | _Unbegun:
    if stop is not None and stop.is_set():
        return _Unbegun(url)
    if deferred := breaker.deferral(url):
        return deferred
    try:
        fetched = fetcher.fetch(url)
    except MediaRejected as exc:
        return exc  # the host answers: a fault of this image alone
    except MediaUnavailable as exc:
        breaker.failed(url)
        return exc
    breaker.served(url)
    return fetched


def _record_failed(
    session: Session, url: str, images: list[MediaDownload], fetched: MediaRejected | MediaUnavailable,
    attempt: int, give_up_at: int,
) -> MediaUnavailable | None:
    """Record a failed fetch of `url` on all these rows; the failure if it is to be tried again."""
    ids = [image.media_id for image in images]
    if isinstance(fetched, MediaUnavailable) and attempt < give_up_at:
        logger.info("media %s (%s) unavailable (attempt %d): %s", ids, url, attempt, fetched)
        return fetched
    _record_failure(session, url, ids, attempt, _failure_reason(fetched, attempt))
    return None


def _count_images(**by_outcome: int) -> None:
    # Counted before the commit: a batch rolled back and tried again counts its images twice, as
    # erp_sync_messages_total counts a redelivery.
    for outcome, count in by_outcome.items():
        if count:
            MEDIA_IMAGES.labels(outcome=outcome).inc(count)


def _failure_reason(fetched: MediaRejected | MediaUnavailable, attempt: int) -> str:
    return str(fetched) if isinstance(fetched, MediaRejected) else f"gave up after {attempt} attempts: {fetched}"


def _confirm_rows(session: Session, confirmed: list[tuple[str, list[MediaDownload], FetchedImage]],
                  attempt: int) -> None:
    """Confirm every downloaded image's rows in one statement (one per image cost a round trip and a parse each)."""
    rows = [(image.media_id, url, found) for url, images, found in confirmed for image in images]
    if not rows:
        return
    session.execute(_CONFIRM, {
        "id": [media_id for media_id, _, _ in rows], "url": [url for _, url, _ in rows],
        "content_type": [found.content_type for _, _, found in rows],
        "byte_size": [found.byte_size for _, _, found in rows], "sha256": [found.sha256 for _, _, found in rows],
        "attempts": attempt, "now": datetime.now(UTC),
    })


def _record_failure(session: Session, url: str, ids: list[int], attempt: int, reason: str) -> None:
    # A failed image never blocks its product: the reason shows in the product API instead. One
    # WARNING a message says how many failed (`confirm_batch`): an image host down for a bulk load
    # wrote five WARNING lines an image.
    logger.info("media %s failed (%s): %s", ids, url, reason)
    # The reason may quote the image host (a content type, a Location): PostgreSQL refuses NUL in text.
    _update_rows(session, url, ids, status=MediaStatus.FAILED, attempts=attempt,
                 failure_reason=reason.replace("\x00", "")[:MAX_REASON_CHARS])


def _update_rows(session: Session, url: str, ids: list[int], **values: object) -> None:
    # Guarded by url and status, so a catalog update or a duplicate that committed during the
    # download is not overwritten with this download's result.
    session.execute(
        update(Media).where(Media.id.in_(ids), Media.url == url, Media.status == MediaStatus.PENDING).values(**values)
    )
