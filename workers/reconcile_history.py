"""Past reconciliation runs for `erp-sync reconcile --history | --show RUN` (the ORM: not the sweep's process)."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from erp_sync.shared.hold_figures import hold_figures
from erp_sync.shared.models import ReconciliationCorrection, ReconciliationHeldChange, ReconciliationRun
from erp_sync.workers.reconcile_summary import SweepSummary, summary_of

RUNS = ReconciliationRun.__table__
STREAMED_ROWS = 1000


def history(session: Session, limit: int = 20) -> list[SweepSummary]:
    """The latest runs, newest first."""
    rows = session.execute(select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(limit))
    return [summary_of(row) for row in rows.mappings()]


def stock_truth(session: Session, limit: int = 20) -> dict[str, Any]:
    """What `--history` prints: the holds now (open, oldest's age, ended by cause) and the latest runs."""
    return {"holds": dataclasses.asdict(hold_figures(session.connection(), fold=False)),
            "runs": [s.as_dict() for s in history(session, limit)]}


def show(session: Session, run_id: int) -> dict[str, Any] | None:
    """One run's summary, every SKU it corrected (old and new figure) and, for a run a limit held,
    every change it held for a decision; None if unknown.

    The two lists are iterators, read from the database when iterated (a thousand rows at a time,
    within `session`): a held run can hold a change for every SKU of a million.
    """
    row = session.execute(select(RUNS).where(RUNS.c.id == run_id)).mappings().one_or_none()
    if row is None:
        return None
    return summary_of(row).as_dict() | {"corrections": _corrections(session, run_id),
                                        "held_changes": _held_changes(session, run_id)}


def _corrections(session: Session, run_id: int) -> Iterator[dict[str, Any]]:
    rows = session.execute(
        select(ReconciliationCorrection.sku, ReconciliationCorrection.old_qty, ReconciliationCorrection.new_qty)
        .where(ReconciliationCorrection.run_id == run_id)
        .order_by(ReconciliationCorrection.sku)
        .execution_options(yield_per=STREAMED_ROWS)
    )
    yield from ({"sku": sku, "old": old, "new": new} for sku, old, new in rows)


def _held_changes(session: Session, run_id: int) -> Iterator[dict[str, Any]]:
    rows = session.execute(
        select(ReconciliationHeldChange.sku, ReconciliationHeldChange.old_qty, ReconciliationHeldChange.erp_qty,
               ReconciliationHeldChange.new_qty)
        .where(ReconciliationHeldChange.run_id == run_id)
        .order_by(ReconciliationHeldChange.sku)
        .execution_options(yield_per=STREAMED_ROWS)
    )
    yield from ({"sku": sku, "commerce_qty": old, "erp_qty": erp, "new_qty": new} for sku, old, erp, new in rows)
