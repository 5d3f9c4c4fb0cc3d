"""Argument types shared by several commands: a wrong value is argparse's error, exit 2, before any work."""
from __future__ import annotations

import argparse

# PostgreSQL's LIMIT takes a bigint, as do our ids.
BIGINT_MAX = 2**63 - 1
PORT_MAX = 65535


def _whole_number(text: str, highest: int, what: str, *, lowest: int = 1) -> int:
    """`text` as a whole number from `lowest` to `highest`; argparse's error naming `what` otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = lowest - 1
    if not lowest <= value <= highest:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number from 1 to BIGINT_MAX, for --limit and a run's id (RUN)."""
    return _whole_number(text, BIGINT_MAX, "a whole number from 1 to 2**63 - 1")


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535, for --port and its kind."""
    return _whole_number(text, PORT_MAX, f"a port from 1 to {PORT_MAX}")


def port_or_any(text: str) -> int:
    """A TCP port, or 0 for any free one, for a server that prints where it listens (the sandbox ERP)."""
    return _whole_number(text, PORT_MAX, f"a port from 0 (any free port) to {PORT_MAX}", lowest=0)


def identifier(text: str) -> str:
    """An order or event id as the shell gave it; argparse's error for bytes that are no UTF-8 text
    (Python keeps them as lone surrogates, which the database's driver cannot send)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"must be UTF-8 text, not {text!r}") from None
    return text
