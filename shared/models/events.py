"""The idempotency record: which events have already had their effect."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, LargeBinary, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from erp_sync.shared.db import Base


class ProcessedEvent(Base):
    """An event whose effect is committed; written in the same transaction as that effect."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(50))
    # SHA-256 of the body as the ERP signed it: a reused id with another body is a conflict, not a
    # duplicate. None on the rows of releases before 0007, which count as the same body.
    body_digest: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The event's ERP timestamp: the record is pruned once it is before the idempotency window
    # (workers/idempotency_window.py). None on the rows of releases before 0020, pruned by processed_at.
    dated: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_processed_events_dated", "dated", postgresql_where=text("dated IS NOT NULL")),
        Index("ix_processed_events_undated", "processed_at", postgresql_where=text("dated IS NULL")),
    )
