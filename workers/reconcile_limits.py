"""The sweep's change limiter: whether a run's changes look like a broken export rather than drift.

Pure: the counts come from the comparison (workers/reconcile.py). A share of 1 turns its limit off.
"""
from __future__ import annotations

from dataclasses import dataclass

from erp_sync.shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Tally:
    """What one comparison would do, against how much stock commerce has."""

    skus: int  # commerce SKUs
    in_stock: int  # commerce SKUs with an ERP figure above zero
    changed: int  # SKUs the run would correct
    zeroed: int  # of those, in stock now and set to zero (or below)
    missing: int  # commerce SKUs the snapshot lacks


def held_reason(settings: Settings, tally: Tally) -> str | None:
    """Why the run must wait for an operator, or None when it may write."""
    limits = (
        (tally.changed, tally.skus, settings.reconcile_max_changed_share, "of all SKUs would change",
         "RECONCILE_MAX_CHANGED_SHARE"),
        (tally.zeroed, tally.in_stock, settings.reconcile_max_zeroed_share,
         "of in-stock SKUs would be set to zero", "RECONCILE_MAX_ZEROED_SHARE"),
        (tally.missing, tally.skus, settings.reconcile_max_missing_share,
         "of commerce SKUs are missing from the snapshot", "RECONCILE_MAX_MISSING_SHARE"),
    )
    reasons = [
        f"{count} of {total} ({100 * count / total:.1f}%) {what}, above {name}={share}"
        for count, total, share, what, name in limits
        if share < 1 and total > 0 and count / total > share
    ]
    return "; ".join(reasons) or None
