"""Text logs cannot be forged by values from outside: control characters in a message are escaped."""
from __future__ import annotations

import io
import logging

from erp_sync.shared.logs import EscapingFormatter


def log_line(message: str, *args: object, exc_info: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error(message, *args, exc_info=exc_info)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_newline_in_an_event_id_cannot_start_a_forged_line():
    written = log_line("event %s parked", "EV-1\n2026-12-04 ERROR ALERT forged")

    assert written == "ERROR event EV-1\\n2026-12-04 ERROR ALERT forged parked\n"


def test_carriage_returns_escape_codes_and_nul_are_escaped_but_text_is_kept():
    written = log_line("sku %s", "Ü\r\x1b[31m\x00é")

    assert written == "ERROR sku Ü\\r\\x1b[31m\\x00é\n"


def test_a_traceback_keeps_its_lines():
    try:
        raise ValueError("boom")
    except ValueError:
        written = log_line("failed %s", "EV-2", exc_info=True)

    assert written.startswith("ERROR failed EV-2\nTraceback (most recent call last):\n")
