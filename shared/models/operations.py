"""What the operator's tools keep: alert mails sent per cause, and webhooks answered per minute."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from erp_sync.shared.db import Base


class AlertThrottle(Base):
    """One row per alert cause: when it last mailed, and how often it came since without a mail."""

    __tablename__ = "alert_throttle"

    cause: Mapped[str] = mapped_column(String(100), primary_key=True)
    mailed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    unmailed: Mapped[int] = mapped_column(Integer)
    latest_text: Mapped[str] = mapped_column(Text)


class WebhookTally(Base):
    """Webhooks the door answered in one minute: accepted by event type, rejected by reason."""

    __tablename__ = "webhook_tallies"

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(20), primary_key=True)
    reason: Mapped[str] = mapped_column(String(50), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class UnfinishedAttempt(Base):
    """A suspect message (back after its worker died twice) started alone and not yet ended: how often."""

    __tablename__ = "unfinished_attempts"

    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    message_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # workers/crash_guard.py's message_key
    attempts: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
