"""The sandbox ERP's settings: one frozen dataclass handed to the app factory."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SnapshotFormat = Literal["json", "csv", "url"]
SNAPSHOT_FORMATS: tuple[SnapshotFormat, ...] = ("json", "csv", "url")

# Spec 7.1: retry at 1m, 5m, 15m, 1h, 6h; alert when still failing after 24h.
RETRY_SCHEDULE_S: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0, 21600.0)
GIVE_UP_AFTER_S = 86400.0


@dataclass(frozen=True)
class SandboxConfig:
    """What one sandbox ERP serves, holds and where it sends its webhooks."""

    api_token: str = "sandbox-erp-token"
    admin_token: str | None = None  # None: the admin API takes api_token
    database: str = ":memory:"  # a SQLite file path, or ":memory:"
    catalog_file: Path | None = None  # a JSON list of catalog.update `data` groups
    generate_groups: int = 0
    variants_per_group: int = 3
    random_seed: int = 0
    public_url: str | None = None  # where generated media URLs point; None: learnt when serving
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_ca_bundle: str | None = None
    webhook_timeout_s: float = 10.0
    webhook_concurrency: int = 1  # deliveries under way at once (an ERP sending in parallel)
    time_scale: float = 1.0  # multiplies every retry delay and the 24h alert horizon
    timestamp_precision: str = "s"  # "s" or "ms": the clock the ERP stamps its stock events with
    reference_ids: bool = False  # name the order in the inventory.change of its deduction (`reference_id`)
    snapshot_format: SnapshotFormat = "json"
    snapshot_chunk_rows: int = 5000
    export_dir: Path | None = None  # where `?format=url` CSV files go; None: a temporary folder
    export_url_ttl_s: float = 3600.0
    allow_oversell: bool = False
    webhooks_for_api_orders: bool = True  # spec 3.2: ANY stock change fires inventory.change
    start_dispatcher: bool = True

    @property
    def effective_admin_token(self) -> str:
        """The token the admin API accepts."""
        return self.admin_token or self.api_token

    def scaled(self, seconds: float) -> float:
        """A spec delay shrunk (or not) by the time scale."""
        return seconds * self.time_scale
