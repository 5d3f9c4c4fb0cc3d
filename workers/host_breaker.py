"""Within one media message: an image host that keeps failing for now is not asked for the rest.

A message carries up to a group's thousand images, and the media worker takes one message at a
time. An unresponsive host then cost every one of its images a full timeout in turn (40 images at
10 s, 8 at a time: 50 s), while every other product's new images waited behind it. Once a host has
failed this many downloads for now since it last served one, its remaining images of the message
are not tried: they go round the retry path with the failed ones (ahead of them, so that images
failing at every try do not trip the breaker before the others are ever asked for), and the
worker moves on. An image's last attempt defers nothing: one never tried is not given up on.
"""
from __future__ import annotations

import threading
from collections import Counter
from urllib.parse import urlsplit

from erp_sync.shared.errors import MediaUnavailable

FAILURES_BEFORE_DEFERRING = 3


class NotTried(MediaUnavailable):
    """An image not asked for in this attempt: its host failed too often in the message."""


class HostBreaker:
    """Counts each host's failures for now since its last success; shared by one message's download threads."""

    def __init__(self, threshold: int | None = FAILURES_BEFORE_DEFERRING) -> None:
        """`threshold` None: nothing is deferred (an image's last attempt)."""
        self._threshold = threshold
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()

    def deferral(self, url: str) -> MediaUnavailable | None:
        """The failure to record instead of fetching `url`, when its host has failed too often; else None."""
        host = urlsplit(url).netloc
        with self._lock:
            failures = self._failures[host]
        if self._threshold is None or failures < self._threshold:
            return None
        return NotTried(f"not tried: {failures} downloads from {host} failed for now in this message", url=url)

    def failed(self, url: str) -> None:
        with self._lock:
            self._failures[urlsplit(url).netloc] += 1

    def served(self, url: str) -> None:
        with self._lock:
            self._failures[urlsplit(url).netloc] = 0
