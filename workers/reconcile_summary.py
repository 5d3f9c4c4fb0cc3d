"""A reconciliation run's outcome as `erp-sync reconcile` prints it, from its `reconciliation_runs` row."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MissingSkus:
    """How many SKUs one side lacks, and the first of them (capped)."""

    count: int = 0
    skus: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SweepSummary:
    """One run's outcome: what `erp-sync reconcile --now` prints."""

    run_id: int | None
    status: str
    checked: int = 0
    mismatched: int = 0
    corrected: int = 0
    newer_kept: int = 0
    missing_in_commerce: MissingSkus = field(default_factory=MissingSkus)
    missing_in_erp: MissingSkus = field(default_factory=MissingSkus)
    duration_s: float = 0.0
    drift_alert: bool = False
    snapshot_form: str | None = None
    started_at: datetime | None = None
    snapshot_taken_at: datetime | None = None
    scheduled_for: datetime | None = None
    error: str | None = None
    drift_share: float = 0.0  # mismatched of checked: how far the shop had drifted from the ERP
    held_reason: str | None = None  # status "held": the change limit the run passed
    dry_run: bool = False  # nothing was written: what a sweep would do now

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 strings."""
        return {key: value.isoformat() if isinstance(value, datetime) else value
                for key, value in asdict(self).items()}


def summary_of(run: Mapping[Any, Any]) -> SweepSummary:
    """The summary of a `reconciliation_runs` row (by column name)."""
    samples = run["missing_skus"] or {}
    finished, started = run["finished_at"], run["started_at"]
    return SweepSummary(
        run_id=run["id"],
        status=run["status"],
        checked=run["checked"],
        mismatched=run["mismatched"],
        corrected=run["corrected"],
        newer_kept=run["newer_kept"],
        missing_in_commerce=MissingSkus(run["missing_in_commerce"], list(samples.get("missing_in_commerce", []))),
        missing_in_erp=MissingSkus(run["missing_in_erp"], list(samples.get("missing_in_erp", []))),
        duration_s=round((finished - started).total_seconds(), 3) if finished and started else 0.0,
        drift_alert=run["drift_alert"],
        snapshot_form=run["snapshot_form"],
        started_at=started,
        snapshot_taken_at=run["snapshot_taken_at"],
        scheduled_for=run["scheduled_for"],
        error=run["error"],
        drift_share=round(run["mismatched"] / run["checked"], 6) if run["checked"] else 0.0,
        held_reason=run["held_reason"],
    )
