"""Alerts: the one home of what needs a person, logged always and mailed when configured.

Code anywhere calls `alert(Cause.X, "text %s", arg)`, as it would log a line: the alert is
logged at ERROR as `ALERT <text>` (with its cause as `alert_cause`) and handed to the process's
sender. Like logging's handlers, the sender is installed once at the process's entry point
(`install_sender`); until then, and in processes without mail settings, alerts are only logged.
shared/alert_mail.py mails them, throttled per cause by shared/alert_throttle.py.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

logger = logging.getLogger(__name__)


class Cause(StrEnum):
    """Why a person is needed; the throttle mails each cause once per period."""

    ORDER_LOCAL_ONLY = "order_local_only"
    MESSAGE_PARKED = "message_parked"
    ORDER_REJECTED = "order_rejected"
    EVENT_ID_CONFLICT = "event_id_conflict"
    ORDER_ID_CONFLICT = "order_id_conflict"
    SWEEP_HELD = "sweep_held"
    SWEEP_DRIFT = "sweep_drift"
    SWEEP_FAILED = "sweep_failed"
    ERP_UNREACHABLE = "erp_unreachable"
    ERP_MISCONFIGURED = "erp_misconfigured"


@dataclass(frozen=True)
class Alert:
    """One occurrence of a cause, with the line that tells what happened."""

    cause: Cause
    text: str


class Sender(Protocol):
    """Takes an alert without blocking its caller, and never raises."""

    def send(self, alert: Alert) -> None: ...


_sender: Sender | None = None


def install_sender(sender: Sender | None) -> Sender | None:
    """Make `sender` take this process's alerts (None: logged only); returns the one it replaces."""
    global _sender
    previous, _sender = _sender, sender
    return previous


def alert(cause: Cause, message: str, *args: object, extra: Mapping[str, object] | None = None) -> Alert:
    """Log the alert at ERROR (with `extra`, the ids of `shared.logs.ids`) and hand it to the process's sender."""
    raised = Alert(cause, message % args if args else message)
    logger.error("ALERT %s", raised.text, extra={"alert_cause": cause.value, **(extra or {})})
    if _sender is not None:
        _sender.send(raised)
    return raised
