"""Log lines that outside input cannot forge: readable text (control characters escaped) or one JSON object a line.

`LOG_FORMAT=json` writes each record as one JSON object with its time, level, process, logger
and message, and the ids a line is about when the call gives them (`ids(...)` as `extra`):
event id, SKU, order id, attempt (and a queued message's id).
"""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The ids a line may carry, as `extra` keys (none is a LogRecord attribute).
ID_FIELDS = ("event_id", "sku", "order_id", "attempt", "message_id", "run_id")
# What a JSON line carries besides: the ids, and the cause of an ALERT line (shared/alerts.py).
JSON_FIELDS = (*ID_FIELDS, "alert_cause")
# C0 controls but the tab, DEL and C1 controls: a newline from an event id would start a fake line.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r"}
# pika's loggers of making and losing a connection. Every failure they tell of also reaches our code
# as an exception, which says so in one line ("lost RabbitMQ", "cannot connect"); their ERROR lines,
# up to seven and a traceback at each attempt of an outage, only bury it.
_PIKA_TRANSPORT_LOGGERS = ("pika.adapters.base_connection", "pika.adapters.blocking_connection",
                           "pika.adapters.utils.connection_workflow", "pika.adapters.utils.io_services_utils")


def escape_controls(text: str) -> str:
    return text.translate(_ESCAPES)


def ids(**values: Any) -> dict[str, Any]:
    """The `extra` of a log call about a message: only the ids given, and not None."""
    return {name: value for name, value in values.items() if value is not None and name in ID_FIELDS}


class EscapingFormatter(logging.Formatter):
    """Escapes the message; a traceback, written by us, keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line; json.dumps escapes every control character, so no line can be forged."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self._process,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= {name: getattr(record, name) for name in JSON_FIELDS if getattr(record, name, None) is not None}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: int | str, log_format: Literal["text", "json"] = "text", process: str = "erp-sync") -> None:
    """One stream handler on the root logger, in the given format; `process` names the process in JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(process) if log_format == "json" else EscapingFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])


def quiet_pika_connection_errors() -> None:
    """Silence pika's narration of failed connections, which our own lines report (see above)."""
    for name in _PIKA_TRANSPORT_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # pika.connection also warns of a broker alarm blocking the connection: only its ERROR lines go,
    # guesses such as "Probably incompatible Protocol Versions" for a handshake cut by an outage.
    logging.getLogger("pika.connection").addFilter(_not_an_error)


def _not_an_error(record: logging.LogRecord) -> bool:
    return record.levelno != logging.ERROR
