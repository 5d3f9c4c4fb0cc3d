"""Settings read from the environment, built once per entry point and passed down."""
from __future__ import annotations

import os
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.retry_policy import retry_span_ms
from erp_sync.shared.topology import AMQP_LONG_MAX, AMQP_SHORT_MAX, DEFAULT_QUEUE_BOUND, QueueBound

MAX_RETRY_DELAY_MS = 7 * 24 * 3600 * 1000
# The longest wait Python's events, locks and sockets accept (about 292 years): past it a duration
# was accepted here and then raised OverflowError when first waited on, at SIGTERM for instance.
MAX_WAIT_S = threading.TIMEOUT_MAX
# Durations compared with an event's age, never waited on: a window of any width is theirs to set.
TIME_WINDOWS = frozenset({"webhook_max_age_s", "webhook_max_future_skew_s", "idempotency_window_s"})
# The idempotency window must outlast the oldest event the door accepts, and its whole retry path, by
# this much more: a webhook answered 202 may also wait in a backed-up queue before a worker applies it.
IDEMPOTENCY_WINDOW_SLACK_S = 24 * 3600
DEFAULT_IDEMPOTENCY_WINDOW_S = 30 * 24 * 3600
LARGEST_SPAN_S = timedelta.max.days * 24 * 3600  # the widest span Python can subtract
# PostgreSQL's timeouts (lock_timeout) are 32-bit milliseconds; past this it refuses every connection.
MAX_PG_TIMEOUT_MS = 2**31 - 1
# The door publishes a webhook's body as it came; RabbitMQ 4 closes the channel on a body over 16 MiB
# (its default max_message_size), so a larger bound let through webhooks the door could not hand on.
MAX_WEBHOOK_BODY_BYTES = 16 * 1024 * 1024
# A worker running batches concurrently prefetches this many rounds of them (workers/runner.py);
# the catalog's, from WORKER_BATCH_SIZE, must fit basic.qos's prefetch_count as WORKER_PREFETCH does.
PREFETCH_ROUNDS = 2
MAX_CATALOG_BATCH_CONCURRENCY = 2
# Past these, a typo rather than a choice: processes beyond a host's cores add only memory and
# database connections, threads beyond a few hundred only switching; images at once, a CDN's limits.
MAX_SERVER_PROCESSES = 64
MAX_SERVER_THREADS = 256
MAX_MEDIA_CONCURRENCY = 64
MAX_WORKER_BATCH_SIZE = AMQP_SHORT_MAX // (PREFETCH_ROUNDS * MAX_CATALOG_BATCH_CONCURRENCY)
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
PLACEHOLDERS = frozenset(
    {"changeme", "change-me", "change_me", "secret", "xxx", "todo", "replace-me", "none", "null"}
)


def _is_placeholder(value: str) -> bool:
    stripped = value.strip().lower()
    return stripped in PLACEHOLDERS or (stripped.startswith("<") and stripped.endswith(">"))


def _split_url(url: str, schemes: tuple[str, ...]) -> SplitResult:
    """The URL's parts as urllib reads them, port included; ValueError unless its scheme is one of `schemes`."""
    try:
        parts = urlsplit(url)
        # pika, requests and SQLAlchemy read the port as urllib does here; a bad one stops us at start, not them later.
        parts.port  # noqa: B018
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if parts.scheme not in schemes:
        raise ValueError(f"must begin with {' or '.join(scheme + '://' for scheme in schemes)}")
    return parts


class Settings(BaseSettings):
    """Every setting of erp-sync; the README lists each with its default."""

    # No float setting means infinity or NaN: each is a duration, a share or a bound.
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, allow_inf_nan=False)

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/erp_sync"
    amqp_url: str = "amqp://guest:guest@localhost:5672/%2F"

    erp_webhook_secret: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    erp_base_url: str | None = None
    erp_api_token: SecretStr | None = None
    erp_order_mode: Literal["orders", "adjust"] = "orders"
    # Also a delay queue's x-message-ttl (in ms), bound as RETRY_DELAYS_MS are.
    order_retry_interval_s: int = Field(default=900, gt=0, le=MAX_RETRY_DELAY_MS // 1000)
    order_retry_window_s: int = Field(default=7200, gt=0)
    erp_connect_timeout_s: float = Field(default=3.05, gt=0)
    erp_read_timeout_s: float = Field(default=10.0, gt=0)
    erp_ca_bundle: Path | None = None
    erp_warehouse_id: str = Field(default="WH-MAIN", min_length=1, max_length=100)
    erp_quick_retries: int = Field(default=3, ge=1, le=10)
    erp_quick_retry_base_s: float = Field(default=0.2, ge=0)
    order_push_concurrency: int = Field(default=8, ge=1, le=32)
    erp_probe_interval_s: float = Field(default=60.0, gt=0)
    hold_grace_period_s: int = Field(default=3600, gt=0)
    # How far the ERP's clock may run behind ours: widens the receipt mark when the ERP's answer has no Date.
    erp_clock_skew_s: float = Field(default=1.0, ge=0, le=3600)
    # The ERP names every order in the figure of its deduction (`reference_id`): a synced order's holds
    # end with that figure or the grace period, never by a figure's timestamp (docs/orders.md).
    erp_names_orders: bool = False
    # Longer than the retry path's whole span (5 delays, then 600 s each up to 25 attempts: 3.4 h).
    order_stranded_after_s: int = Field(default=4 * 3600, gt=0)
    media_allow_private_networks: bool = False

    reconcile_schedule: str = "0 3 * * *"
    reconcile_timezone: str = "UTC"
    reconcile_drift_alert_share: float = Field(default=0.05, ge=0, le=1)
    reconcile_read_timeout_s: float = Field(default=60.0, gt=0)
    reconcile_max_duration_s: float = Field(default=1800.0, gt=0)
    # A snapshot past this many rows is taken as endless (a paging cursor that loops): each row is
    # copied to the shared database's disk, about 13 MB/s until RECONCILE_MAX_DURATION_S.
    reconcile_max_snapshot_rows: int = Field(default=5_000_000, gt=0)
    # A sweep past any of these shares writes nothing and waits for an operator (1: that limit off).
    reconcile_max_changed_share: float = Field(default=0.05, ge=0, le=1)
    reconcile_max_zeroed_share: float = Field(default=0.02, ge=0, le=1)
    reconcile_max_missing_share: float = Field(default=0.02, ge=0, le=1)

    webhook_max_age_s: int = Field(default=48 * 3600, gt=0)
    webhook_max_future_skew_s: int = Field(default=300, ge=0)
    # Events dated before this are not applied, and the records of events applied before it are pruned.
    # Unset: the default, or longer where WEBHOOK_MAX_AGE_S and the retry path need it (`idempotency_window`).
    idempotency_window_s: int | None = Field(default=None, gt=0, le=LARGEST_SPAN_S)
    webhook_max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0, le=MAX_WEBHOOK_BODY_BYTES)
    publish_confirm_timeout_s: float = Field(default=5.0, gt=0)
    unavailable_retry_after_s: int = Field(default=30, gt=0)
    queue_max_length: int = Field(default=DEFAULT_QUEUE_BOUND.max_length, gt=0, le=AMQP_LONG_MAX)
    queue_max_bytes: int = Field(default=DEFAULT_QUEUE_BOUND.max_bytes, gt=0, le=AMQP_LONG_MAX)

    ingress_host: str = "127.0.0.1"
    ingress_port: int = Field(default=8000, gt=0, lt=65536)
    ingress_workers: int = Field(default=2, gt=0, le=MAX_SERVER_PROCESSES)
    ingress_threads: int = Field(default=32, gt=0, le=MAX_SERVER_THREADS)
    ingress_tls_certfile: Path | None = None
    ingress_tls_keyfile: Path | None = None
    # Headers, then the body, must each arrive within this (granian's header timeout caps it at 60 s).
    http_read_timeout_s: float = Field(default=30.0, ge=0.001, le=60.0)

    storefront_api_token: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8001, gt=0, lt=65536)
    api_workers: int = Field(default=2, gt=0, le=MAX_SERVER_PROCESSES)
    api_threads: int = Field(default=32, gt=0, le=MAX_SERVER_THREADS)

    retry_delays_ms: Annotated[tuple[int, ...], NoDecode] = (1_000, 5_000, 30_000, 120_000, 600_000)
    max_delivery_attempts: int = Field(default=25, gt=0)
    # PostgreSQL's lock_timeout on a worker's connections: a statement kept waiting this long for a
    # row lock fails, its batch rolls back and is retried; so no wait on a lock outlasts a shutdown.
    database_lock_timeout_ms: int = Field(default=5_000, ge=1, le=MAX_PG_TIMEOUT_MS)
    # After SIGTERM a worker finishes what is under way; still running after this, it exits anyway
    # and the broker hands its unacked messages out again. Keep it below the orchestrator's grace period.
    worker_stop_timeout_s: float = Field(default=25.0, gt=0)
    worker_prefetch: int = Field(default=200, gt=0, le=AMQP_SHORT_MAX)
    worker_batch_size: int = Field(default=100, gt=0, le=MAX_WORKER_BATCH_SIZE)
    worker_batch_window_ms: int = Field(default=5, ge=0)
    # Catalog batches one catalog worker applies at once, each in a thread and a transaction of its
    # own: two overlap one batch's Python with another's statements; on a machine shared with
    # PostgreSQL and other catalog workers, one each spends less CPU a variant (docs/production.md).
    # No more than two: two batches of 1,000-variant groups already peak near 300 MB.
    catalog_batch_concurrency: int = Field(default=2, ge=1, le=MAX_CATALOG_BATCH_CONCURRENCY)
    media_timeout_s: float = Field(default=10.0, gt=0)
    media_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    media_concurrency: int = Field(default=8, gt=0, le=MAX_MEDIA_CONCURRENCY)
    # The media worker's CPU priority below the others' (os.nice): downloads never slow catalog or stock.
    media_nice: int = Field(default=10, ge=0, le=19)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # A worker's own /metrics and /healthz (0: none); each worker process needs a port of its own on one host.
    metrics_port: int = Field(default=0, ge=0, lt=65536)
    metrics_host: str = "127.0.0.1"
    # Read by the command line before these settings (shared/env_file.py); listed here to be documented.
    erp_sync_env_file: str = ".erp-sync.env"
    # Read by prometheus_client in every process that has it set (`erp-sync ingress` sets one of its own).
    prometheus_multiproc_dir: Path | None = None

    # Alerts are always logged; they are mailed too once ALERT_SMTP_HOST and ALERT_EMAIL_TO are set.
    alert_smtp_host: str | None = None
    alert_smtp_port: int = Field(default=587, gt=0, lt=65536)
    alert_smtp_tls: Literal["starttls", "implicit", "none"] = "starttls"
    alert_smtp_user: str | None = None
    alert_smtp_password: SecretStr | None = None
    alert_smtp_timeout_s: float = Field(default=10.0, gt=0)
    alert_email_from: str = "erp-sync@localhost"
    alert_email_to: Annotated[tuple[str, ...], NoDecode] = ()
    alert_throttle_s: float = Field(default=900.0, gt=0)

    # The operator console at /console of `erp-sync api`: off (404) until one credential is set.
    console_user: str | None = None
    console_password: SecretStr | None = None
    console_token: SecretStr | None = None

    @field_validator("erp_webhook_secret", "storefront_api_token", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("erp_webhook_secret", "storefront_api_token")
    @classmethod
    def _reject_placeholder_secrets(cls, secrets: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for secret in secrets:
            if _is_placeholder(secret.get_secret_value()):
                raise ValueError("a placeholder is not a secret")
            if len(secret.get_secret_value()) < 16:
                raise ValueError("each secret needs at least 16 characters")
        return secrets

    @field_validator("storefront_api_token", "erp_api_token", "console_token")
    @classmethod
    def _header_safe_tokens(cls, tokens: tuple[SecretStr, ...] | SecretStr | None) -> object:
        # An HTTP server reads header values as Latin-1 bytes: a token with another character was
        # accepted here, then never matched (and the ERP's could not be sent at all).
        for token in tokens if isinstance(tokens, tuple) else (tokens,):
            if token is not None and not _VISIBLE_ASCII.fullmatch(token.get_secret_value()):
                raise ValueError("a Bearer token is visible ASCII characters only (no spaces, no accents)")
        return tokens

    @field_validator("erp_api_token")
    @classmethod
    def _reject_placeholder_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and _is_placeholder(token.get_secret_value()):
            raise ValueError("a placeholder is not a token")
        return token

    @field_validator("erp_base_url")
    @classmethod
    def _http_base_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if _is_placeholder(url) or not _split_url(url, ("http", "https")).hostname:
            raise ValueError("must be an http(s) URL")
        return url.rstrip("/")

    @field_validator("erp_ca_bundle")
    @classmethod
    def _existing_ca_bundle(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no CA bundle file at {path}")
        return path

    @field_validator("prometheus_multiproc_dir")
    @classmethod
    def _writable_directory(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_dir():
            raise ValueError(f"no directory at {path}")
        if path is not None and not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write in {path}")
        return path

    @field_validator("*")
    @classmethod
    def _waitable_duration(cls, value: object, info: ValidationInfo) -> object:
        # Every duration's name ends in its unit, and all but the webhooks' time window end up as a wait.
        if info.field_name in TIME_WINDOWS:
            return value
        unit = (info.field_name or "").rpartition("_")[2]
        limit = {"s": MAX_WAIT_S, "ms": MAX_WAIT_S * 1000}.get(unit)
        if limit is not None and isinstance(value, int | float) and value > limit:
            raise ValueError(f"at most {limit:.0f} {unit}")
        return value

    @field_validator("reconcile_schedule")
    @classmethod
    def _cron_expression(cls, expression: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(expression):
            raise ValueError("must be a cron expression such as '0 3 * * *'")
        return expression

    @field_validator("reconcile_timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, url: str) -> str:
        _split_url(url, ("postgresql+psycopg", "postgresql"))
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        rest = url.partition("://")[2]
        host_ends = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
        if "@" in rest[host_ends:]:
            # SQLAlchemy would read such a password whole, libpq (the sweep) up to the "/": refuse both.
            raise ValueError("percent-encode '/', '?' and '#' in the user name and password (%2F, %3F, %23)")
        return url

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url(cls, url: str) -> str:
        # The query's connection options are pika's to read: shared/amqp_url.py, where pika is imported.
        _split_url(url, ("amqp", "amqps"))
        return url

    @field_validator("alert_smtp_host", "alert_smtp_user", "alert_smtp_password", "console_user", "console_password",
                     "console_token", "prometheus_multiproc_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `${ALERT_SMTP_HOST:-}` in a compose file passes an empty string: the feature stays off.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("alert_email_to", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("alert_email_to")
    @classmethod
    def _mail_addresses(cls, addresses: tuple[str, ...]) -> tuple[str, ...]:
        for address in addresses:
            if "@" not in address or any(c.isspace() for c in address):
                raise ValueError(f"{address!r} is not a mail address")
        return addresses

    @field_validator("console_password", "console_token")
    @classmethod
    def _strong_console_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and (_is_placeholder(secret.get_secret_value()) or len(secret.get_secret_value()) < 12):
            raise ValueError("needs at least 12 characters, and no placeholder")
        return secret

    @field_validator("retry_delays_ms", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("retry_delays_ms")
    @classmethod
    def _growing_delays(cls, delays: tuple[int, ...]) -> tuple[int, ...]:
        if not delays or any(d <= 0 for d in delays) or list(delays) != sorted(delays):
            raise ValueError("must be positive milliseconds in growing order, e.g. 1000,5000,30000")
        # Each is a delay queue's x-message-ttl; beyond 32 bits declaring it failed with a traceback.
        if delays[-1] > MAX_RETRY_DELAY_MS:
            raise ValueError(f"a delay is at most {MAX_RETRY_DELAY_MS} ms (a week)")
        return delays

    @model_validator(mode="after")
    def _settings_that_go_together(self) -> Settings:
        if (self.ingress_tls_certfile is None) != (self.ingress_tls_keyfile is None):
            raise ValueError("INGRESS_TLS_CERTFILE and INGRESS_TLS_KEYFILE go together")
        if self.alert_smtp_host is not None and not self.alert_email_to:
            raise ValueError("ALERT_SMTP_HOST is set but ALERT_EMAIL_TO names nobody to mail")
        if (self.alert_smtp_user is None) != (self.alert_smtp_password is None):
            raise ValueError("ALERT_SMTP_USER and ALERT_SMTP_PASSWORD go together")
        if (self.console_user is None) != (self.console_password is None):
            raise ValueError("CONSOLE_USER and CONSOLE_PASSWORD go together")
        if self.idempotency_window_s is not None and self.idempotency_window_s < self._shortest_idempotency_window:
            raise ValueError(f"IDEMPOTENCY_WINDOW_S must be at least WEBHOOK_MAX_AGE_S, the retry path "
                             f"(RETRY_DELAYS_MS over MAX_DELIVERY_ATTEMPTS) and a day "
                             f"({self._shortest_idempotency_window} s): an event the door accepts must "
                             f"still be applied after waiting in the retry path")
        return self

    @property
    def _shortest_idempotency_window(self) -> int:
        retry_path_s = retry_span_ms(self.retry_delays_ms, self.max_delivery_attempts) // 1000
        return self.webhook_max_age_s + retry_path_s + IDEMPOTENCY_WINDOW_SLACK_S

    @property
    def idempotency_window(self) -> timedelta:
        """IDEMPOTENCY_WINDOW_S, or unset the default, widened to what WEBHOOK_MAX_AGE_S and the retry path need."""
        seconds = self.idempotency_window_s or max(DEFAULT_IDEMPOTENCY_WINDOW_S, self._shortest_idempotency_window)
        return timedelta(seconds=min(seconds, LARGEST_SPAN_S))

    @property
    def queue_bound(self) -> QueueBound:
        """Every work queue's bound, as declared on the broker."""
        return QueueBound(self.queue_max_length, self.queue_max_bytes)

    def webhook_secrets(self) -> tuple[bytes, ...]:
        """The accepted webhook secrets; refuses to go on without one."""
        if not self.erp_webhook_secret:
            raise ConfigurationError("ERP_WEBHOOK_SECRET is not set: the ingress cannot verify webhooks")
        return tuple(s.get_secret_value().encode() for s in self.erp_webhook_secret)

    def storefront_tokens(self) -> tuple[bytes, ...]:
        """The storefront's accepted API tokens; refuses to go on without one."""
        if not self.storefront_api_token:
            raise ConfigurationError("STOREFRONT_API_TOKEN is not set: erp-sync api serves no one without a token")
        return tuple(token.get_secret_value().encode() for token in self.storefront_api_token)

    def erp_credentials(self, needed_by: str) -> tuple[str, str]:
        """The ERP's base URL and API token; refuses to go on without either, naming who needs them."""
        if self.erp_base_url is None:
            raise ConfigurationError(f"ERP_BASE_URL is not set: {needed_by} cannot reach the ERP")
        if self.erp_api_token is None or not self.erp_api_token.get_secret_value():
            raise ConfigurationError(f"ERP_API_TOKEN is not set: {needed_by} cannot authenticate to the ERP")
        return self.erp_base_url, self.erp_api_token.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning a validation error into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        # Our own checks' words, without pydantic's "Value error, " before them.
        raised = first.get("ctx", {}).get("error")
        message = str(raised) if isinstance(raised, ValueError) else first["msg"]
        # A check of two settings together names them in its message.
        raise ConfigurationError(f"{str(first['loc'][0]).upper()}: {message}" if first["loc"] else message) from exc
