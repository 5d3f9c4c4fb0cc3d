"""The values each status-like column may hold, and the CHECK constraint that keeps a column to them."""
from __future__ import annotations

from enum import StrEnum

from sqlalchemy import CheckConstraint, column


def one_of(values: type[StrEnum], column_name: str = "status") -> CheckConstraint:
    """The constraint, named after its column, that keeps `column_name` to `values`."""
    return CheckConstraint(column(column_name).in_([value.value for value in values]), name=column_name)


class MediaStatus(StrEnum):
    """Where the download of one image stands."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class OrderStatus(StrEnum):
    """Where an order stands with the ERP (spec 7.2)."""

    RECEIVED = "received"
    SYNCED = "synced"
    PENDING_SYNC = "pending_sync"
    LOCAL_ONLY = "local_only"
    REJECTED = "rejected"


class StockChangeKind(StrEnum):
    """How an inventory.change states the stock: a new total or a difference."""

    ABSOLUTE = "absolute"
    DELTA = "delta"


class RunStatus(StrEnum):
    """Where a reconciliation run stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # another sweep held the lock, or this schedule slot was already swept
    HELD = "held"  # past a change limit: nothing written, its changes wait for --approve or --reject
    REJECTED = "rejected"  # a held run an operator rejected: nothing was written


class StockChangeOutcome(StrEnum):
    """What applying a stock change did."""

    APPLIED = "applied"
    STALE = "stale"
    DUPLICATE = "duplicate"
