"""The nightly sweep: each run's tally and the stock figures it corrected."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, column, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db import Base
from shared.models.catalog import SKU_LENGTH


class RunStatus(StrEnum):
    """Where a reconciliation run stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ReconciliationRun(Base):
    """One comparison of the ERP snapshot with our stock, and what it found."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (CheckConstraint(column("status").in_([s.value for s in RunStatus]), name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), server_default=RunStatus.RUNNING.value)
    checked: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    mismatched: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    corrected: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    missing_in_commerce: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    missing_in_erp: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)

    corrections: Mapped[list[ReconciliationCorrection]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )


class ReconciliationCorrection(Base):
    """A SKU whose stock a run overwrote; old_qty is null when we had no figure at all."""

    __tablename__ = "reconciliation_corrections"

    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id", ondelete="CASCADE"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH), primary_key=True)
    old_qty: Mapped[int | None] = mapped_column(Integer)
    new_qty: Mapped[int] = mapped_column(Integer)
    corrected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    run: Mapped[ReconciliationRun] = relationship(back_populates="corrections")
