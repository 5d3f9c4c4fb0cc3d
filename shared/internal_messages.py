"""Messages erp-sync sends itself on the internal exchange."""
from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.retry_policy import ATTEMPT_HEADER
from erp_sync.shared.topology import INTERNAL_EXCHANGE, RETRY_EXCHANGE, WORK_QUEUES

# Images named by one media message: a group's follow-ups are a message or two, not one per
# image (a catalog push of 1,000-variant groups would otherwise publish 100,000 per batch).
MEDIA_IMAGES_PER_MESSAGE = 1_000
# And bytes: far under RabbitMQ's largest message (16 MiB on 4.x), whatever URLs an earlier door took
# (the door now bounds a URL at 2,048 characters, so 1,000 of them come to about 2 MB).
MEDIA_MESSAGE_BYTES = 4 * 1024 * 1024
# An image's JSON beyond its URL and SKU: its id, the names, the quotes and commas.
_IMAGE_OVERHEAD_BYTES = 64


class MediaDownload(BaseModel):
    """Ask the media worker to fetch and confirm one image row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    media_id: int
    sku: str
    url: str

    def to_message(self) -> OutgoingMessage:
        return OutgoingMessage(
            INTERNAL_EXCHANGE,
            WORK_QUEUES["media"].routing_key,
            self.model_dump_json().encode(),
            message_id=f"media-{self.media_id}",
        )


class MediaBatch(BaseModel):
    """Ask the media worker to fetch and confirm several image rows, each distinct URL once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    images: tuple[MediaDownload, ...] = Field(min_length=1)

    @property
    def message_id(self) -> str:
        return f"media-{self.images[0].media_id}-{len(self.images)}"

    def to_message(self) -> OutgoingMessage:
        return OutgoingMessage(
            INTERNAL_EXCHANGE, WORK_QUEUES["media"].routing_key, self.model_dump_json().encode(), self.message_id
        )

    def resume_message(self, attempt: int) -> OutgoingMessage:
        """This batch on the work queue again, at once and still as attempt number `attempt`: a
        stopping worker did not begin it, which is no failure."""
        return OutgoingMessage(INTERNAL_EXCHANGE, WORK_QUEUES["media"].routing_key, self.model_dump_json().encode(),
                               self.message_id, headers={ATTEMPT_HEADER: attempt})

    def retry_message(self, attempt: int, delay_ms: int) -> OutgoingMessage:
        """This batch again after `delay_ms`, as attempt number `attempt` (its images' failures were transient)."""
        return OutgoingMessage(
            RETRY_EXCHANGE, WORK_QUEUES["media"].retry_routing_key(delay_ms), self.model_dump_json().encode(),
            self.message_id, headers={ATTEMPT_HEADER: attempt},
        )


def media_messages(downloads: Sequence[MediaDownload]) -> list[OutgoingMessage]:
    """The media messages asking for these downloads, in order: `MEDIA_IMAGES_PER_MESSAGE` images and
    about `MEDIA_MESSAGE_BYTES` at most each (an image larger alone goes alone)."""
    batches: list[list[MediaDownload]] = []
    size = 0
    for download in downloads:
        # A SKU's characters may each take 6 bytes escaped (\uXXXX); a URL is ASCII.
        cost = len(download.url) + 6 * len(download.sku) + _IMAGE_OVERHEAD_BYTES
        if not batches or len(batches[-1]) == MEDIA_IMAGES_PER_MESSAGE or size + cost > MEDIA_MESSAGE_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(download)
        size += cost
    return [MediaBatch(images=tuple(batch)).to_message() for batch in batches]


def decode_media_request(raw: bytes) -> MediaBatch | MediaDownload:
    """A media message: a batch, or one image (as sent before batches; still queued after an upgrade)."""
    try:
        is_batch = "images" in json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise MessageDecodeError(f"invalid media message: {exc}", raw=raw) from exc
    try:
        return MediaBatch.model_validate_json(raw) if is_batch else MediaDownload.model_validate_json(raw)
    except ValidationError as exc:
        raise MessageDecodeError(f"invalid media message: {exc.error_count()} errors", raw=raw) from exc
