"""Stopping a long-running process cleanly on SIGTERM or SIGINT, within a bound."""
from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)

# Exit status of a process that had to cut its work short to keep its stop bound.
EXIT_STOP_TIMEOUT = 1


def stop_on_signals(doing: str, exit_after_s: float | None = None) -> threading.Event:
    """An event set by SIGTERM or SIGINT; `doing` says what finishes before the process stops.

    With `exit_after_s`, a process still running that long after the signal exits at once: what
    it had not committed rolls back with its connections, what it had not acked is redelivered.
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            return
        logger.info("signal %d: %s, then stopping", signum, doing)
        stop.set()
        if exit_after_s is not None:
            threading.Thread(target=_exit_after, args=(exit_after_s,), name="stop-bound", daemon=True).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def _exit_after(seconds: float) -> None:
    threading.Event().wait(seconds)
    logger.error("still not stopped %.0f s after the signal (WORKER_STOP_TIMEOUT_S); exiting now, "
                 "unacked messages go back to the queue", seconds)
    logging.shutdown()
    os._exit(EXIT_STOP_TIMEOUT)
