"""The media worker's handler against the real database and a real image server on loopback."""
from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from erp_sync.shared.batch_runner import BatchRunner
from erp_sync.shared.consumer import ConsumerConfig, Delivery, Done
from erp_sync.shared.errors import MediaUnavailable, MessageDecodeError
from erp_sync.shared.internal_messages import MediaBatch, MediaDownload
from erp_sync.shared.topology import INTERNAL_EXCHANGE, RETRY_EXCHANGE, WORK_QUEUES
from erp_sync.shared.models.catalog import Media, ProductGroup, Variant
from erp_sync.shared.models.states import MediaStatus
from erp_sync.shared.retry_policy import ATTEMPT_HEADER, Retry
from erp_sync.shared.settings import Settings, load_settings
from tests.support.canned_http import answering
from tests.support.waiting import wait_for
from tests.support.image_server import (
    MAX_BYTES,
    PNG,
    READ_TIMEOUT_S,
    TOGETHER,
    TOGETHER_WAIT_S,
    running_image_server,
)
from erp_sync.workers.media import build_handler, image_attempts

SKU = "IPH15-128-BLK"
MAX_ATTEMPTS = Settings.model_fields["max_delivery_attempts"].default
LAST_ATTEMPT = image_attempts(MAX_ATTEMPTS)  # an image's: the message's last ones are kept for the database


@pytest.fixture
def handler():
    settings = load_settings(media_allow_private_networks=True, media_timeout_s=1.0, media_max_bytes=MAX_BYTES,
                             max_delivery_attempts=MAX_ATTEMPTS)
    return build_handler(settings)


@pytest.fixture
def add_media(db_session):
    """Adds a product with one image at `url`; returns the image's row."""
    now = datetime.now(UTC)
    db_session.add(ProductGroup(product_group_id="PG-1001", group_name="iPhone 15", erp_updated_at=now))
    db_session.add(Variant(sku=SKU, product_group_id="PG-1001", display_name="iPhone 15 128GB Black",
                           price=Decimal("79900.00"), erp_updated_at=now))

    def add(url: str) -> Media:
        media = Media(sku=SKU, position=0, url=url, is_main=True)
        db_session.add(media)
        db_session.flush()
        return media

    return add


def delivery_for(media: Media, url: str | None = None, attempt: int | None = None) -> Delivery:
    body = MediaDownload(media_id=media.id, sku=media.sku, url=url or media.url).to_message().body
    headers = {ATTEMPT_HEADER: attempt} if attempt else {}
    return Delivery(delivery_tag=1, body=body, message_id=f"media-{media.id}", content_type="application/json",
                    headers=headers)


def stored(db_session, media: Media) -> Media:
    db_session.expire_all()
    return db_session.scalars(select(Media).where(Media.id == media.id)).one()


def test_downloaded_image_is_confirmed_with_its_digest(db_session, handler, add_media, image_server):
    media = add_media(f"{image_server.base}/tiny.png")

    follow_ups = handler(delivery_for(media), db_session)

    row = stored(db_session, media)
    assert follow_ups is None
    assert (row.status, row.content_type, row.byte_size) == (MediaStatus.CONFIRMED, "image/png", len(PNG))
    assert row.sha256 == hashlib.sha256(PNG).hexdigest()
    assert row.downloaded_at is not None and row.failure_reason is None
    assert row.attempts == 1


@pytest.mark.parametrize(("path", "reason"), [
    ("/missing.png", "HTTP 404"),
    ("/page-as.png", "served as image/png but not a PNG, JPEG, GIF or WebP image"),
    ("/huge.png", f"larger than {MAX_BYTES} bytes ({len(PNG) + MAX_BYTES} announced)"),
    ("/huge-chunked.png", f"larger than {MAX_BYTES} bytes"),
])
def test_an_image_that_can_never_be_fetched_is_marked_failed_without_raising(
    db_session, handler, add_media, image_server, path, reason
):
    media = add_media(f"{image_server.base}{path}")

    handler(delivery_for(media), db_session)

    row = stored(db_session, media)
    assert (row.status, row.failure_reason) == (MediaStatus.FAILED, reason)
    assert row.sha256 is None and row.downloaded_at is None


def test_an_image_hosts_text_quoted_in_the_reason_is_stored_without_its_nul(db_session, handler, add_media):
    # given an image host whose content type carries a NUL, which PostgreSQL refuses in text
    with answering(200, b"<html></html>", {"Content-Type": "text/html\x00"}) as base:
        media = add_media(f"{base}/img.png")

        # when the image is fetched
        handler(delivery_for(media), db_session)

    # then it alone is marked failed, with the reason (parking the message left every image in it pending)
    row = stored(db_session, media)
    assert (row.status, row.failure_reason) == (MediaStatus.FAILED, "not an image: served as text/html")


def test_a_server_error_raises_for_a_retry_and_leaves_the_row_pending(db_session, handler, add_media, image_server):
    media = add_media(f"{image_server.base}/down.png")

    with pytest.raises(MediaUnavailable) as caught:
        handler(delivery_for(media), db_session)

    assert caught.value.status == 503
    assert stored(db_session, media).status == MediaStatus.PENDING


def test_the_last_attempt_marks_the_image_failed_instead_of_retrying(db_session, handler, add_media, image_server):
    media = add_media(f"{image_server.base}/down.png")

    handler(delivery_for(media, attempt=LAST_ATTEMPT), db_session)

    row = stored(db_session, media)
    assert (row.status, row.failure_reason, row.attempts) == (
        MediaStatus.FAILED, f"gave up after {LAST_ATTEMPT} attempts: HTTP 503", LAST_ATTEMPT)


@pytest.mark.parametrize(("max_attempts", "image_gives_up_at"), [(25, 20), (100, 95), (5, 5), (3, 3)])
def test_an_image_is_tried_for_hours_yet_gives_up_before_its_message_is_parked(max_attempts, image_gives_up_at):
    # a message failing for the database's sake at the consumer's last attempt is parked, its rows left
    # pending: an image's own failures end a few attempts before (as early as the 5th, as before, if need be)
    assert image_attempts(max_attempts) == image_gives_up_at


def test_an_image_host_down_for_minutes_is_tried_again_past_its_fifth_attempt(db_session, handler, add_media,
                                                                             image_server):
    # given an image whose host has been down past the 5th attempt (2.6 minutes of the default delays)
    media = add_media(f"{image_server.base}/down.png")

    # when its message comes round again, then it is retried, pending: down for good only at the last attempt
    with pytest.raises(MediaUnavailable):
        handler(delivery_for(media, attempt=LAST_ATTEMPT - 1), db_session)
    assert stored(db_session, media).status == MediaStatus.PENDING


def test_a_duplicate_message_for_a_confirmed_image_downloads_nothing(db_session, handler, add_media, image_server):
    media = add_media(f"{image_server.base}/tiny.png")
    handler(delivery_for(media), db_session)

    handler(delivery_for(media), db_session)

    assert image_server.hits == {"/tiny.png": 1}
    assert stored(db_session, media).status == MediaStatus.CONFIRMED


def test_a_message_for_a_replaced_url_downloads_nothing(db_session, handler, add_media, image_server):
    media = add_media(f"{image_server.base}/tiny.png")

    handler(delivery_for(media, url=f"{image_server.base}/photo.jpg"), db_session)

    assert sum(image_server.hits.values()) == 0
    assert stored(db_session, media).status == MediaStatus.PENDING


def test_a_message_for_a_deleted_row_is_done(db_session, handler, add_media, image_server):
    media = add_media(f"{image_server.base}/tiny.png")
    delivery = delivery_for(media)
    db_session.delete(media)
    db_session.flush()

    assert handler(delivery, db_session) is None
    assert sum(image_server.hits.values()) == 0


def test_an_undecodable_message_is_a_permanent_error(db_session, handler):
    with pytest.raises(MessageDecodeError):
        handler(Delivery(delivery_tag=1, body=b'{"media_id": "x"}', message_id="m", content_type=None), db_session)


def test_forbidden_address_is_marked_failed_when_private_networks_are_off(db_session, add_media, image_server):
    handler = build_handler(load_settings(media_allow_private_networks=False))
    media = add_media(f"{image_server.base}/tiny.png")

    handler(delivery_for(media), db_session)

    row = stored(db_session, media)
    assert row.status == MediaStatus.FAILED
    assert row.failure_reason == "refused loopback address 127.0.0.1 of 127.0.0.1"
    assert sum(image_server.hits.values()) == 0


def test_inside_the_consumer_a_failure_is_done_and_an_outage_is_retried(db_session, handler, add_media, image_server):
    # given the consumer's batch runner on this test's transaction
    failing = add_media(f"{image_server.base}/missing.png")
    down = Media(sku=SKU, position=1, url=f"{image_server.base}/down.png")
    db_session.add(down)
    db_session.flush()
    factory = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    runner = BatchRunner(handler, factory, ConsumerConfig("amqp://unused", (200, 400), max_attempts=25))

    # when both run in one batch
    outcomes = runner.run([delivery_for(failing), delivery_for(down)])

    # then the 404 is recorded and done, the 503 goes round the retry path with its row untouched
    assert outcomes == [Done(), Retry(delay_ms=200, attempt=2)]
    assert (stored(db_session, failing).status, stored(db_session, down).status) == (
        MediaStatus.FAILED, MediaStatus.PENDING)


def batch_delivery(rows: list[Media], attempt: int | None = None) -> Delivery:
    batch = MediaBatch(images=tuple(MediaDownload(media_id=m.id, sku=m.sku, url=m.url) for m in rows))
    headers = {ATTEMPT_HEADER: attempt} if attempt else {}
    return Delivery(delivery_tag=1, body=batch.to_message().body, message_id=batch.message_id,
                    content_type="application/json", headers=headers)


@pytest.fixture
def add_images(db_session, add_media):
    """Adds images at these paths, one position each, to the product; returns their rows."""
    def add(*urls: str) -> list[Media]:
        rows = [Media(sku=SKU, position=position, url=url) for position, url in enumerate(urls, start=1)]
        db_session.add_all(rows)
        db_session.flush()
        return rows

    return add


def test_a_batch_fetches_each_distinct_url_once_and_confirms_every_row(db_session, handler, add_images, image_server):
    # given two rows showing the same image and one row of another
    rows = add_images(f"{image_server.base}/tiny.png", f"{image_server.base}/tiny.png", f"{image_server.base}/missing.png")

    # when one batch names all three
    follow_ups = handler(batch_delivery(rows), db_session)

    # then the shared URL was fetched once, and every row has its outcome
    assert follow_ups is None
    assert image_server.hits["/tiny.png"] == 1
    assert [stored(db_session, row).status for row in rows] == [
        MediaStatus.CONFIRMED, MediaStatus.CONFIRMED, MediaStatus.FAILED]


def test_a_batch_skips_rows_no_longer_pending(db_session, handler, add_images, image_server):
    # given a batch whose image was confirmed since it was sent
    rows = add_images(f"{image_server.base}/tiny.png")
    handler(batch_delivery(rows), db_session)

    # when the same batch comes again
    handler(batch_delivery(rows), db_session)

    # then nothing is fetched again
    assert image_server.hits["/tiny.png"] == 1


def test_a_batch_sends_only_its_unavailable_images_round_again(db_session, handler, add_images, image_server):
    # given a batch with an image whose server is down and one that works
    down, fine = add_images(f"{image_server.base}/down.png", f"{image_server.base}/tiny.png")

    # when the handler runs it
    [retry] = handler(batch_delivery([down, fine]), db_session)

    # then the working one is confirmed and only the other goes to a delay queue, as attempt 2
    assert stored(db_session, fine).status == MediaStatus.CONFIRMED
    assert stored(db_session, down).status == MediaStatus.PENDING
    assert retry.exchange == RETRY_EXCHANGE and retry.headers == {ATTEMPT_HEADER: 2}
    assert MediaBatch.model_validate_json(retry.body).images == (
        MediaDownload(media_id=down.id, sku=SKU, url=down.url),)


def test_a_batch_downloads_its_images_at_once(db_session, add_images, image_server):
    # given a worker that downloads four images at a time, and a server that answers an image only
    # while three others are being asked for too (and a 503 to each after waiting in vain)
    settings = load_settings(media_allow_private_networks=True, media_timeout_s=2 * TOGETHER_WAIT_S,
                             media_max_bytes=MAX_BYTES, media_concurrency=TOGETHER)
    rows = add_images(*(f"{image_server.base}/together.png?image={n}" for n in range(TOGETHER)))

    # when one batch names them all
    follow_ups = build_handler(settings)(batch_delivery(rows), db_session)

    # then every image was served, so all were asked for at once, and each row is confirmed
    assert follow_ups is None
    assert image_server.hits["/together.png"] == TOGETHER
    assert [stored(db_session, row).status for row in rows] == [MediaStatus.CONFIRMED] * TOGETHER


def test_a_host_failing_again_and_again_is_not_asked_for_the_rest_of_the_message(db_session, add_images, image_server):
    # given a worker downloading two at a time, and one message with ten images on a host that
    # never answers in time and one image on another host
    settings = load_settings(media_allow_private_networks=True, media_timeout_s=READ_TIMEOUT_S,
                             media_max_bytes=MAX_BYTES, media_concurrency=2, max_delivery_attempts=25)
    with running_image_server() as other_host:
        *hanging, fine = add_images(*(f"{image_server.base}/slow.png?image={n}" for n in range(10)),
                                    f"{other_host.base}/tiny.png")

        # when the worker takes the message
        [retry] = build_handler(settings)(batch_delivery([*hanging, fine]), db_session)

    # then the hanging host was asked until it had failed three times since its last answer (two
    # at a time: four), the other host's image is confirmed, and all ten go round again, pending
    assert image_server.hits["/slow.png"] == 4
    assert stored(db_session, fine).status == MediaStatus.CONFIRMED
    assert [stored(db_session, row).status for row in hanging] == [MediaStatus.PENDING] * 10
    assert sorted(image.media_id for image in MediaBatch.model_validate_json(retry.body).images) == sorted(
        row.id for row in hanging)


def test_images_a_failing_host_was_not_asked_for_go_round_first_and_are_tried_before_any_is_given_up(
        db_session, add_images, image_server):
    # given a worker downloading one at a time, and a message whose first four images the host
    # always fails (503) and whose last two it serves
    settings = load_settings(media_allow_private_networks=True, media_timeout_s=1.0, media_max_bytes=MAX_BYTES,
                             media_concurrency=1, max_delivery_attempts=MAX_ATTEMPTS)
    *down, fine_1, fine_2 = add_images(*(f"{image_server.base}/down.png?image={n}" for n in range(4)),
                                       f"{image_server.base}/tiny.png?image=1", f"{image_server.base}/tiny.png?image=2")
    handle = build_handler(settings)

    # when the first attempt trips the host's breaker after three failures
    [retry] = handle(batch_delivery([*down, fine_1, fine_2]), db_session)
    assert image_server.hits["/tiny.png"] == 0

    # then the images not asked for go round ahead of those that failed, and the next attempt gets them
    assert [image.media_id for image in MediaBatch.model_validate_json(retry.body).images] == [
        down[3].id, fine_1.id, fine_2.id, down[0].id, down[1].id, down[2].id]
    handle(Delivery(2, retry.body, "media", "application/json", {ATTEMPT_HEADER: 2}), db_session)
    assert [stored(db_session, row).status for row in (fine_1, fine_2)] == [MediaStatus.CONFIRMED] * 2


@pytest.mark.parametrize("attempt", [1, LAST_ATTEMPT], ids=["a first attempt", "the images' last attempt"])
def test_a_worker_told_to_stop_begins_no_more_downloads_and_puts_the_rest_back_as_they_were(
        db_session, add_images, image_server, attempt):
    # given a worker downloading one at a time, and a message of a slow image and three quick ones
    settings = load_settings(media_allow_private_networks=True, media_timeout_s=READ_TIMEOUT_S * 8,
                             media_max_bytes=MAX_BYTES, media_concurrency=1, max_delivery_attempts=MAX_ATTEMPTS)
    slow, *quick = add_images(f"{image_server.base}/slow.png", *(f"{image_server.base}/tiny.png?image={n}"
                                                                for n in range(3)))
    stop = threading.Event()

    # when the worker is told to stop while the slow one downloads (the server has its request)
    threading.Thread(target=lambda: wait_for(lambda: image_server.hits["/slow.png"] == 1) and stop.set()).start()
    [resumed] = build_handler(settings, stop)(batch_delivery([slow, *quick], attempt=attempt), db_session)

    # then the download under way ends and is confirmed, and the others, never asked for, go back on
    # the work queue at once, as the same attempt: a stop uses up none of theirs, nor delays them
    assert stored(db_session, slow).status == MediaStatus.CONFIRMED and image_server.hits["/tiny.png"] == 0
    assert [image.media_id for image in MediaBatch.model_validate_json(resumed.body).images] == [r.id for r in quick]
    assert (resumed.exchange, resumed.routing_key) == (INTERNAL_EXCHANGE, WORK_QUEUES["media"].routing_key)
    assert resumed.headers == {ATTEMPT_HEADER: attempt}
    assert [stored(db_session, row).status for row in quick] == [MediaStatus.PENDING] * 3


def test_an_images_last_attempt_asks_for_every_image_however_often_its_host_failed(db_session, add_images,
                                                                                  image_server):
    # given a message at its images' last attempt, the host failing its first four images
    settings = load_settings(media_allow_private_networks=True, media_timeout_s=1.0, media_max_bytes=MAX_BYTES,
                             media_concurrency=1, max_delivery_attempts=MAX_ATTEMPTS)
    *down, fine = add_images(*(f"{image_server.base}/down.png?image={n}" for n in range(4)),
                             f"{image_server.base}/tiny.png")

    # when the worker takes it
    assert build_handler(settings)(batch_delivery([*down, fine], attempt=LAST_ATTEMPT), db_session) is None

    # then every image was asked for: the one served is confirmed, the others failed for their host's own answer
    assert image_server.hits["/down.png"] == 4 and stored(db_session, fine).status == MediaStatus.CONFIRMED
    assert all(stored(db_session, row).status == MediaStatus.FAILED and "not tried" not in
               stored(db_session, row).failure_reason for row in down)


def test_an_image_host_down_is_told_once_a_message_at_warning_not_once_an_image(db_session, handler, add_images,
                                                                               image_server, caplog):
    # given a message of four images on a host that is down
    rows = add_images(*(f"{image_server.base}/down.png?image={n}" for n in range(4)))
    before = {outcome: images_counted(outcome) for outcome in ("retried", "failed")}

    # when it is tried (attempt 2), then tried for the last time
    with caplog.at_level("INFO", logger="erp_sync.workers.media"):
        handler(batch_delivery(rows, attempt=2), db_session)
        retried = [r for r in caplog.records if r.levelname == "WARNING"]
        caplog.clear()
        handler(batch_delivery(rows, attempt=LAST_ATTEMPT), db_session)

    # then a try to come is no news (INFO, as the consumer's retries), and the failure is one
    # WARNING for the message naming how many failed, where a bulk load wrote five lines an image
    assert retried == []
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"media {batch_delivery(rows).message_id}: 4 images failed for good (attempt {LAST_ATTEMPT}), the first "
        f"{image_server.base}/down.png?image=0: gave up after {LAST_ATTEMPT} attempts: HTTP 503"]
    assert [stored(db_session, row).status for row in rows] == [MediaStatus.FAILED] * 4
    # and /metrics counts them (ErpSyncImagesFailed opens a ticket on the failed ones)
    assert {outcome: images_counted(outcome) - count for outcome, count in before.items()} == {"retried": 4, "failed": 4}


def images_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("erp_sync_media_images_total", {"outcome": outcome}) or 0.0
