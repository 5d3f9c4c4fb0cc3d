"""Messages erp-sync sends itself on the internal exchange."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.topology import INTERNAL_EXCHANGE, WORK_QUEUES


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

    @classmethod
    def decode(cls, raw: bytes) -> MediaDownload:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise MessageDecodeError(f"invalid media.download message: {exc.error_count()} errors", raw=raw) from exc
