"""Argument types shared by several commands: a wrong value is argparse's error, exit 2, before any work."""
from __future__ import annotations

import argparse

# PostgreSQL's LIMIT takes a bigint.
BIGINT_MAX = 2**63 - 1


def positive_int(text: str) -> int:
    """A whole number from 1 to BIGINT_MAX, for --limit."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= BIGINT_MAX:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 2**63 - 1, not {text!r}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535, for --port and its kind."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, not {text!r}")
    return value
