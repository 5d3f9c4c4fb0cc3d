"""Counts of rows by a column's value, kept as the rows change (migration 0021, shared/row_counts.py)."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from erp_sync.shared.db import Base


class RowCount(Base):
    """How many rows of `counted` had `key`, as of the last fold of the changes since."""

    __tablename__ = "row_counts"

    counted: Mapped[str] = mapped_column(String(50), primary_key=True)
    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


# A change's rows are only appended (by triggers) and deleted (by a fold): no key to keep up.
ROW_COUNT_CHANGES = Table(
    "row_count_changes", Base.metadata,
    Column("counted", String(50), nullable=False),
    Column("key", String(50), nullable=False),
    Column("n", BigInteger, nullable=False),
)
