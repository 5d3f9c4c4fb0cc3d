"""Logs cannot be forged by values from outside: escaped in text, one JSON object a line in JSON."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import pytest

from erp_sync.cli import process_name
from erp_sync.shared.logs import EscapingFormatter, JsonFormatter, ids


def written_by(formatter: logging.Formatter, name: str, log: Callable[[logging.Logger], None]) -> str:
    """What `log` writes through a handler with `formatter`, kept from every other handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        log(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def log_line(message: str, *args: object, exc_info: bool = False) -> str:
    return written_by(EscapingFormatter("%(levelname)s %(message)s"), "tests.logs",
                      lambda logger: logger.error(message, *args, exc_info=exc_info))


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


def json_line(message: str, *args: object, **extra: object) -> dict:
    [line] = written_by(JsonFormatter("worker inventory"), "tests.logs.json",
                        lambda logger: logger.info(message, *args, extra=extra)).splitlines()
    return json.loads(line)


def test_a_json_line_carries_the_process_and_the_ids_it_is_given():
    written = json_line("event %s for sku %s applied", "EV-1", "SKU-1", **ids(event_id="EV-1", sku="SKU-1", order_id=None))

    assert {key: written[key] for key in ("level", "process", "logger", "message", "event_id", "sku")} == {
        "level": "INFO", "process": "worker inventory", "logger": "tests.logs.json",
        "message": "event EV-1 for sku SKU-1 applied", "event_id": "EV-1", "sku": "SKU-1"}
    assert "order_id" not in written and written["time"].endswith("+00:00")


def test_a_newline_from_outside_stays_inside_its_json_line():
    written = json_line("order %s synced", "ORD-1\n{\"level\": \"ERROR\"}", **ids(order_id="ORD-1\n", attempt=2))

    assert written["message"] == "order ORD-1\n{\"level\": \"ERROR\"} synced"
    assert (written["order_id"], written["attempt"]) == ("ORD-1\n", 2)


def test_ids_keeps_only_the_known_fields_that_have_a_value():
    assert ids(event_id="E", sku=None, attempt=0, colour="red") == {"event_id": "E", "attempt": 0}


@pytest.mark.parametrize(("arguments", "name"), [
    (["worker", "inventory"], "worker inventory"), (["ingress", "--port", "9"], "ingress"), (["api"], "api"),
])
def test_the_process_is_named_by_its_command(arguments, name):
    assert process_name(arguments) == name
