"""The errors of erp-sync, one tree.

    ErpSyncError
    ├── ConfigurationError        a setting is missing or wrong; the process stops at start
    ├── TransientError            retry later with a growing delay
    │   ├── BrokerUnavailable     RabbitMQ unreachable, channel closed, confirm timed out
    │   │   └── ConfirmTimeout    no confirm in time, though the connection is still alive
    │   ├── ParkedBeingRead       another `erp-sync dlq` command or the console reads the parked messages
    │   ├── DatabaseUnavailable   PostgreSQL unreachable, deadlock, serialization failure
    │   │   ├── DatabaseOutOfReach  no answer on a connection: refused, timed out, lost, shutting down
    │   │   └── RowLockTimeout    a row stayed locked past DATABASE_LOCK_TIMEOUT_MS
    │   ├── ErpUnavailable        the ERP did not take a request: unreachable, timed out, 5xx, 429, 408
    │   │   └── ErpMisconfigured  our token, base URL or CA does not fit the ERP (401, 403, 404...): alert
    │   └── MediaUnavailable      an image server timed out, refused, or answered 5xx or 429
    └── PermanentError            can never succeed; park with the reason
        ├── MessageDecodeError    the body is not a valid message (keeps the raw bytes)
        ├── PublishRejected       the broker nacked or returned a message (no route)
        │   └── QueueFull         nacked: the queue is at its bound (reject-publish), try again later
        ├── ErpRejected           the ERP refused the request itself (400, 409, 422, ...)
        ├── EventIdConflict       an event id already applied with another body or event type: alert
        ├── EventTooOld           dated before the idempotency window: its record may be gone, not applied
        └── MediaRejected         an image URL answered 4xx, is not an image, is too big, or is forbidden

Three are defined beside the one rule that raises them: MigrationHeldOff (shared/migrate.py) and
RecountHeldOff (shared/row_counts.py) are TransientErrors, ReplayCutShort (shared/dead_letters.py)
a PublishRejected.

A worker decides between retry and park from the class alone. Which ERP answer raises which of
the three ERP errors is decided in one place, erp_sync.workers.erp_http.
"""
from __future__ import annotations


class ErpSyncError(Exception):
    """Root of every error erp-sync raises on purpose."""


class ConfigurationError(ErpSyncError):
    """A setting is missing or malformed; the message names the variable."""


class TransientError(ErpSyncError):
    """Worth retrying: the cause is expected to go away."""


class PermanentError(ErpSyncError):
    """Not worth retrying: the same input will fail the same way."""


class BrokerUnavailable(TransientError):
    """RabbitMQ could not take or confirm a message in time."""


class WorkerStopping(TransientError):
    """The worker was told to stop before a batch began: the batch stays unacked, and the broker hands it out again."""


class ParkedBeingRead(TransientError):
    """Another `dlq` command, or the console, is reading the parked messages; they are back when it ends."""


class ConfirmTimeout(BrokerUnavailable):
    """No confirm came in time, yet the connection is alive: the broker is slow, not gone."""


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not be reached or asked us to try again."""


class DatabaseOutOfReach(DatabaseUnavailable):
    """PostgreSQL gave no answer on a connection: whatever the work was, the next try fails alike until it is back."""


class RowLockTimeout(DatabaseUnavailable):
    """A row this work needs stayed locked by another transaction past DATABASE_LOCK_TIMEOUT_MS."""


class ErpUnavailable(TransientError):
    """The ERP did not take a request this time; the URL, its status, a body excerpt (if any) and how
    long it asked us to wait (`Retry-After`, in seconds, if it did) are kept."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None,
                 url: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.url = url
        self.retry_after_s = retry_after_s


class ErpMisconfigured(ErpUnavailable):
    """Our token, base URL or CA does not fit the ERP: retrying soon is pointless, an operator must act.

    A transient error all the same: the request that met it is not at fault, and must wait (an
    order stays pending) rather than be refused.
    """


class _MediaError(ErpSyncError):
    """An image download that failed; its URL and status (if any) are kept."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class MediaUnavailable(_MediaError, TransientError):
    """An image could not be downloaded this time; url and status (if any) are kept."""


class MessageDecodeError(PermanentError):
    """A message body that does not decode to its schema; the raw bytes are kept."""

    def __init__(self, message: str, *, raw: bytes, details: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.details = details or []


class PublishRejected(PermanentError):
    """The broker refused a message (nack, or returned as unroutable)."""


class QueueFull(PublishRejected):
    """The broker nacked a message: with `reject-publish` overflow, its queue is at its bound.

    Only backpressure, though a PublishRejected for callers that treat every refusal alike.
    """


class ErpRejected(PermanentError):
    """The ERP refused a request for good (4xx about the request); URL, status and body are kept."""

    def __init__(self, message: str, *, status: int, body: str, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.url = url


class MediaRejected(_MediaError, PermanentError):
    """An image that will never be accepted from this URL; url and status (if any) are kept."""


class EventIdConflict(PermanentError):
    """An event id the ERP used before for another body (or event type): applying it would lose one of the two.

    Parked rather than dropped as a duplicate: an operator must learn which event the ERP meant.
    """

    def __init__(self, message: str, *, event_id: str, event_type: str) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.event_type = event_type


class EventTooOld(PermanentError):
    """An ERP event dated before IDEMPOTENCY_WINDOW_S: a copy of it may have been applied and its record pruned.

    Parked, never applied: applying it could count a difference twice.
    """
