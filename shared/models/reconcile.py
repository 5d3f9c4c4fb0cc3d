"""The nightly sweep: each run's tally and the stock figures it corrected."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from erp_sync.shared.db import Base
from erp_sync.shared.models.catalog import SKU_LENGTH
from erp_sync.shared.models.states import RunStatus, one_of


class ReconciliationRun(Base):
    """One comparison of the ERP snapshot with our stock, and what it found."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        one_of(RunStatus),
        # One running or succeeded run per schedule slot, however many schedulers race for it.
        Index(
            "uq_reconciliation_runs_one_per_slot",
            "scheduled_for",
            unique=True,
            postgresql_where=text("status IN ('running', 'succeeded', 'held')"),
        ),
    )

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
    scheduled_for: Mapped[datetime | None]  # the schedule slot; null for `reconcile --now`
    snapshot_taken_at: Mapped[datetime | None]  # when reading began: figures stamped later are newer
    snapshot_form: Mapped[str | None] = mapped_column(String(8))
    newer_kept: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    drift_alert: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # The first SKUs missing on each side: {"missing_in_commerce": [...], "missing_in_erp": [...]}.
    missing_skus: Mapped[dict[str, Any] | None]
    snapshot_read_until: Mapped[datetime | None]  # when the snapshot was read in full
    held_reason: Mapped[str | None] = mapped_column(Text)  # the limit a held run passed
    decided_at: Mapped[datetime | None]  # when a held run was approved or rejected

    corrections: Mapped[list[ReconciliationCorrection]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )


class ReconciliationCorrection(Base):
    """A SKU whose stock a run overwrote; old_qty is null when we had no figure at all."""

    __tablename__ = "reconciliation_corrections"

    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id", ondelete="CASCADE"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH), primary_key=True)
    old_qty: Mapped[int | None] = mapped_column(BigInteger)
    new_qty: Mapped[int] = mapped_column(BigInteger)
    corrected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    run: Mapped[ReconciliationRun] = relationship(back_populates="corrections")


class ReconciliationHeldChange(Base):
    """A change a held run would make: applied by `reconcile --approve RUN`, dropped with the run."""

    __tablename__ = "reconciliation_held_changes"

    run_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_runs.id", ondelete="CASCADE"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH), primary_key=True)
    old_qty: Mapped[int] = mapped_column(BigInteger)
    erp_qty: Mapped[int] = mapped_column(BigInteger)  # the snapshot's figure
    new_qty: Mapped[int] = mapped_column(BigInteger)  # the snapshot's figure plus the deltas since
