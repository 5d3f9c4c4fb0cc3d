"""Loops that run beside a worker's consumer in the same process, and fail the worker with them."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class BackgroundLoop(threading.Thread):
    """Runs `loop(stop)` beside the consumer; when it fails, the whole worker stops and fails with it."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._loop = loop
        self._worker_stop = stop
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self._loop(self._worker_stop)
        except BaseException as exc:  # noqa: BLE001 (kept, and raised again by run_worker)
            logger.exception("%s failed; stopping the worker", self.name)
            self.failure = exc
        finally:
            self._worker_stop.set()  # a worker missing one of its loops must not go on as if it had it
