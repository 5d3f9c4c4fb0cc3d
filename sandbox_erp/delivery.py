"""Delivering the outbox to the ingress in a background thread, on the spec 7.1 retry schedule."""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter

from erp_sync.sandbox_erp import outbox
from erp_sync.sandbox_erp.config import GIVE_UP_AFTER_S, RETRY_SCHEDULE_S, SandboxConfig
from erp_sync.sandbox_erp.events import sign
from erp_sync.sandbox_erp.store import Store

logger = logging.getLogger("sandbox_erp.delivery")


def retry_delay(failed_attempts: int, time_scale: float) -> float:
    """Seconds before the next try after this many failures: 1m, 5m, 15m, 1h, then every 6h."""
    index = min(max(failed_attempts, 1), len(RETRY_SCHEDULE_S)) - 1
    return RETRY_SCHEDULE_S[index] * time_scale


def next_attempt_at(created_at: float, now: float, failed_attempts: int, time_scale: float) -> float | None:
    """When to try again, or None once the 24h horizon has passed (then the admin is alerted)."""
    horizon = created_at + GIVE_UP_AFTER_S * time_scale
    if now >= horizon:
        return None
    # The last try lands on the horizon itself, so "still failing after 24h" is observed, not guessed.
    return min(now + retry_delay(failed_attempts, time_scale), horizon)


def outcome(status: int | None) -> str:
    """What an answer means for the delivery: delivered, retried (pending), or given up on."""
    if status is None or status >= 500 or status in (408, 429):
        return outbox.PENDING
    if 200 <= status < 300:
        return outbox.DELIVERED
    return outbox.DATA_ERROR if status == 400 else outbox.REJECTED


def _session(concurrency: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(concurrency, 10))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Dispatcher:
    """One thread that posts due outbox rows, signed, and reschedules the failures."""

    def __init__(self, store: Store, config: SandboxConfig, session: requests.Session | None = None) -> None:
        self._store = store
        self._config = config
        self._session = session or _session(config.webhook_concurrency)
        # Due rows are posted this many at a time; the next rows are read once all are recorded.
        self._pool = (ThreadPoolExecutor(config.webhook_concurrency, thread_name_prefix="sandbox-erp-webhook")
                      if config.webhook_concurrency > 1 else None)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start delivering in the background."""
        self._thread = threading.Thread(target=self._run, name="sandbox-erp-webhooks", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now: something was queued."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current delivery."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.deliver_due(time.time())
                with self._store.reading() as conn:
                    due_at = outbox.next_due_at(conn)
            except Exception:  # the thread must outlive one bad row or a closed store
                logger.exception("webhook dispatcher pass failed")
                due_at = None
            wait = 1.0 if due_at is None else min(max(due_at - time.time(), 0.0), 1.0)
            self._wake.wait(wait)
            self._wake.clear()

    def deliver_due(self, now: float) -> int:
        """Post every delivery due at `now`; returns how many were attempted."""
        with self._store.reading() as conn:
            rows = outbox.due(conn, now)
        if self._pool is None:
            for row in rows:
                self._deliver(*row)
        else:
            list(self._pool.map(lambda row: self._deliver(*row), rows))
        return len(rows)

    def _deliver(self, outbox_id: int, event_id: str, body: bytes, attempts: int, created_at: float) -> None:
        config = self._config
        assert config.webhook_url is not None and config.webhook_secret is not None
        status: int | None = None
        error: str | None = None
        try:
            response = self._session.post(
                config.webhook_url, data=body, timeout=config.webhook_timeout_s,
                verify=config.webhook_ca_bundle or True,
                headers={"Content-Type": "application/json", "X-ERP-Signature": sign(config.webhook_secret, body)},
            )
            status = response.status_code
            if status >= 300:
                error = response.text[:500]
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = time.time()
        new_status = outcome(status)
        next_at = None
        if new_status == outbox.PENDING:
            next_at = next_attempt_at(created_at, now, attempts + 1, config.time_scale)
            if next_at is None:
                new_status = outbox.FAILED
        with self._store.transaction() as conn:
            outbox.record_attempt(conn, outbox_id, now, status, error, new_status, next_at)
            if new_status == outbox.FAILED:
                outbox.add_alert(conn, event_id, f"webhook {event_id} undelivered after {attempts + 1} attempts: {error}")
        self._log(event_id, status, error, new_status, next_at, now)

    def _log(self, event_id: str, status: int | None, error: str | None, new_status: str,
             next_at: float | None, now: float) -> None:
        if new_status == outbox.DELIVERED:
            logger.info("webhook %s delivered (%s)", event_id, status)
        elif new_status == outbox.DATA_ERROR:
            logger.error("webhook %s: data error, not retried (400): %s", event_id, error)
        elif new_status == outbox.REJECTED:
            logger.error("webhook %s rejected with %s, not retried: %s", event_id, status, error)
        elif new_status == outbox.FAILED:
            logger.error("ADMIN ALERT: webhook %s still failing at the 24h horizon: %s", event_id, error)
        else:
            logger.warning("webhook %s failed (%s), retrying in %.3f s", event_id, status or error,
                           (next_at or now) - now)
