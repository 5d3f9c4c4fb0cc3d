"""Stopping a long-running process cleanly on SIGTERM or SIGINT."""
from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)


def stop_on_signals(doing: str) -> threading.Event:
    """An event set by SIGTERM or SIGINT; `doing` says what finishes before the process stops."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: %s, then stopping", signum, doing)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
