"""Deadlines for whole HTTP calls (an image download, a push to the ERP), all watched by one thread.

A call's deadline shuts the sockets it reads from: urllib3's read timeout bounds each read, not a
server trickling bytes, whether of its headers or of its body. The connections of the pools in
`WATCHED_POOLS` hand their socket to the call their thread runs (`watch`) as they start reading a
proxy's answer to CONNECT or the answer itself, and take it back as they return to the pool (`unwatch`).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
import urllib3
import urllib3.connection
import urllib3.response
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

logger = logging.getLogger(__name__)


@dataclass(order=True)
class _Entry:
    at: float
    order: int
    action: Callable[[], None] | None = field(compare=False)


class Deadlines:
    """Runs each action at its deadline on one daemon thread, unless it was cancelled first.

    Actions run holding the lock `cancel` takes, so once `cancel` returns its action has either
    run to the end or never will: a socket is never shut after its connection went back to the pool.
    Actions must be short (a socket shutdown).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._due = threading.Condition()
        self._heap: list[_Entry] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, at: float, action: Callable[[], None]) -> Callable[[], None]:
        """Run `action` at monotonic time `at`; returns the function that cancels it."""
        entry = _Entry(at, next(self._order), action)
        with self._due:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name=self._name, daemon=True)
                self._thread.start()
            if self._heap[0] is entry:
                self._due.notify()

        def cancel() -> None:
            with self._due:
                entry.action = None

        return cancel

    def _watch(self) -> None:
        with self._due:
            while True:
                while self._heap and self._heap[0].action is None:
                    heapq.heappop(self._heap)  # cancelled: most calls end well before their deadline
                if not self._heap:
                    self._due.wait()
                    continue
                wait_s = self._heap[0].at - time.monotonic()
                if wait_s > 0:
                    self._due.wait(wait_s)
                    continue
                action = heapq.heappop(self._heap).action
                if action is not None:
                    try:
                        action()
                    except Exception:
                        # This thread watches every later call: it must outlive any one of them.
                        logger.exception("an HTTP call's deadline action failed")


_in_flight = threading.local()  # the Cut of the call this thread runs, if any


@dataclass
class Cut:
    """One call's deadline: the sockets it reads from now, and whether the deadline shut one."""

    sockets: list[socket.socket] = field(default_factory=list)
    expired: bool = False
    happened: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    disarm: Callable[[], None] = lambda: None

    def shut(self) -> None:
        """The deadline: shut every socket read from now, and any handed over later."""
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                self._shut(sock)

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            if sock in self.sockets:  # handed over at a proxy's tunnel, and again as the answer comes
                return
            self.sockets.append(sock)
            if self.expired:  # handed over after the deadline (it passed while connecting)
                self._shut(sock)

    def remove(self, sock: socket.socket) -> None:
        with self.lock:
            if sock in self.sockets:
                self.sockets.remove(sock)

    def _shut(self, sock: socket.socket) -> None:
        self.happened.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already, or reset by the peer
        except Exception:
            # Runs inside urllib3 too (`add`): whatever a socket raises, the call must not see it.
            logger.exception("an HTTP call's deadline could not shut %r", sock)


def _shuttable(sock: socket.socket | None) -> socket.socket | None:
    """The socket itself: TLS within TLS (an HTTPS ERP behind an HTTPS proxy) is urllib3's SSLTransport,
    which has no `shutdown`, around the proxy's TLS socket."""
    return getattr(sock, "socket", sock)


def watch(sock: socket.socket | None) -> None:
    """Hand a socket about to be read from to the call this thread runs (a no-op outside one)."""
    cut: Cut | None = getattr(_in_flight, "cut", None)
    if cut is not None and (sock := _shuttable(sock)) is not None:
        cut.add(sock)


def unwatch(sock: socket.socket | None) -> None:
    """Take a socket back from this thread's call, its connection going back to the pool: never shut after."""
    cut: Cut | None = getattr(_in_flight, "cut", None)
    if cut is not None and (sock := _shuttable(sock)) is not None:
        cut.remove(sock)


@contextmanager
def cut_at(deadline: float, deadlines: Deadlines) -> Iterator[Cut]:
    """Shut, at `deadline`, every socket this thread's call reads from meanwhile (`watch`), but
    none whose connection went back to the pool first (`unwatch`)."""
    cut = Cut()
    cut.disarm = deadlines.call_at(deadline, cut.shut)
    _in_flight.cut = cut
    try:
        yield cut
    finally:
        cut.disarm()
        _in_flight.cut = None


@contextmanager
def cut_short_as(cut: Cut, raised: type[BaseException] | tuple[type[BaseException], ...],
                 too_slow: Callable[[], Exception]) -> Iterator[None]:
    """Inside `cut`'s call: whatever of `raised` comes once its deadline has shut a socket is `too_slow()`.

    A shut socket surfaces as whichever error the reader was in (reset, short body, bad chunk): the
    caller's own error for a call that took too long replaces it.
    """
    try:
        yield
    except raised as exc:
        if cut.happened.is_set():
            raise too_slow() from exc
        raise


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def _tunnel(self) -> None:
        watch(self.sock)  # a proxy's answer to CONNECT, over the proxy's TLS if any, is read here
        super()._tunnel()

    def getresponse(self) -> urllib3.response.HTTPResponse:  # type: ignore[override]  # as urllib3 does
        watch(self.sock)  # the answer's headers are read here; over TLS, a socket that replaced the first
        return super().getresponse()


class _WatchedHTTPSConnection(_WatchedHTTPConnection, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        unwatch(getattr(conn, "sock", None))  # back in the pool, where the next call takes it
        super()._put_conn(conn)


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        unwatch(getattr(conn, "sock", None))
        super()._put_conn(conn)


WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter over `WATCHED_POOLS`, direct or through a proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.ProxyManager:
        manager: urllib3.ProxyManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = WATCHED_POOLS
        return manager


def watched(session: requests.Session) -> requests.Session:
    """`session`, its http and https connections handing their sockets to their call's deadline."""
    for prefix in ("http://", "https://"):
        if not isinstance(session.adapters.get(prefix), WatchedAdapter):  # a session kept for every sweep
            session.mount(prefix, WatchedAdapter())
    return session
