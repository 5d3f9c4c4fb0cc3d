"""The open-loop generator: a fixed rate of POSTs on uvloop, each latency from its scheduled send time.

A server that stalls is charged for every request it held back (no coordinated omission, as in
wrk2), and so is this generator: a request it hands to a connection late still counts from when
it was due, and how late it was goes into `send_lags_s`. To keep that lag small on a machine the
server shares, each request costs as little as the generator can make it: no task, future, timer
or stream per request, only a protocol callback per answer on uvloop, and one timer per tick
sending every request that is due. `cpu_s` is the generator's own CPU over the run.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import cast

import uvloop

from bench.loadgen import Post, Result

REQUEST_TIMEOUT_S = 10.0
TICK_S = 0.001
HEAD_END = b"\r\n\r\n"
# Every server here sends Content-Length; an answer without it ends the connection's reuse.
CONTENT_LENGTH = b"\r\ncontent-length:"
CLOSE = b"\r\nconnection: close"


class _Client(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, pacer: _Pacer) -> None:
        self._pacer = pacer
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self.scheduled = 0.0
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is a Transport in all but its class hierarchy.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, scheduled: float) -> None:
        assert self._transport is not None
        self.scheduled, self.busy = scheduled, True
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        head_end = buffer.find(HEAD_END)
        if head_end < 0:
            return
        head = bytes(buffer[:head_end]).lower()
        start = head.find(CONTENT_LENGTH)
        length = 0
        if start >= 0:
            end = head.find(b"\r\n", start + 2)
            length = int(head[start + len(CONTENT_LENGTH):end if end >= 0 else len(head)])
        if len(buffer) < head_end + 4 + length:
            return
        status = int(buffer[9:12])
        del buffer[:]
        self.busy = False
        reusable = start >= 0 and CLOSE not in head
        self._pacer.answered(self, status, reusable)
        if not reusable:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._pacer.lost(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class _Pacer:
    """Due requests wait here for an idle connection; at most `size` connections are open or opening."""

    def __init__(self, host: str, port: int, size: int, result: Result) -> None:
        self._loop = asyncio.get_running_loop()
        self._host, self._port, self._size = host, port, size
        self._result = result
        self._waiting: deque[tuple[bytes, float]] = deque()
        self._idle: list[_Client] = []
        self._clients: set[_Client] = set()
        self._opening = 0
        self.outstanding = 0
        # Set when `outstanding` falls to 0; the run's end waits on a fresh one.
        self.all_answered: asyncio.Future[None] = self._loop.create_future()

    def due(self, request: bytes, scheduled: float) -> None:
        self.outstanding += 1
        if self._idle:
            self._idle.pop().send(request, scheduled)
            return
        self._waiting.append((request, scheduled))
        self._open_for_waiting()

    def _open_for_waiting(self) -> None:
        while len(self._waiting) > self._opening and len(self._clients) + self._opening < self._size:
            self._opening += 1
            self._loop.create_task(self._open())

    async def _open(self) -> None:
        try:
            _transport, client = await self._loop.create_connection(lambda: _Client(self), self._host, self._port)
        except OSError:
            self._opening -= 1
            # The request first in line fails with the connection meant for it.
            if self._waiting:
                self._waiting.popleft()
                self._settle(error=True)
            self._open_for_waiting()
            return
        self._opening -= 1
        self._clients.add(client)
        self._ready(client)

    def _ready(self, client: _Client) -> None:
        if self._waiting:
            client.send(*self._waiting.popleft())
        else:
            self._idle.append(client)

    def answered(self, client: _Client, status: int, reusable: bool) -> None:
        self._result.record(status, time.perf_counter() - client.scheduled)
        self._settle()
        if reusable:
            self._ready(client)

    def lost(self, client: _Client) -> None:
        self._clients.discard(client)
        if client in self._idle:
            self._idle.remove(client)
        if client.busy:
            client.busy = False
            self._settle(error=True)
        self._open_for_waiting()

    def time_out(self, now: float) -> None:
        """Cut connections whose request has waited over REQUEST_TIMEOUT_S: an error each."""
        for client in [c for c in self._clients if c.busy and now - c.scheduled > REQUEST_TIMEOUT_S]:
            client.abort()

    def _settle(self, error: bool = False) -> None:
        if error:
            self._result.errors += 1
        self.outstanding -= 1
        if self.outstanding == 0 and not self.all_answered.done():
            self.all_answered.set_result(None)

    def close(self) -> None:
        for client in list(self._clients):
            client.abort()


async def _paced(host: str, port: int, posts: Sequence[Post], rate: float, duration_s: float,
                 connections: int) -> Result:
    loop = asyncio.get_running_loop()
    result = Result(duration_s=duration_s)
    pacer = _Pacer(host, port, connections, result)
    requests: Iterator[bytes] = itertools.cycle([post.wire(host, port) for post in posts])
    total = max(1, round(rate * duration_s))
    lags = result.send_lags_s
    cpu_before = time.process_time()
    start = time.perf_counter() + 0.01
    index, last_sweep = 0, start
    while index < total:
        now = time.perf_counter()
        # Everything due by now goes out in this tick; a late tick sends its backlog at once.
        while index < total and (scheduled := start + index / rate) <= now:
            lags.append(now - scheduled)
            pacer.due(next(requests), scheduled)
            index += 1
        if now - last_sweep >= 1.0:
            pacer.time_out(now)
            last_sweep = now
        if index < total:
            # uvloop's timers count whole milliseconds and may fire up to half of one early: waking
            # before the next request is due would only spin, so a tick comes at most once a ms.
            # Its clock, loop.time(), is as coarse (whole milliseconds), so every time here is perf_counter's.
            wake: asyncio.Future[None] = loop.create_future()
            loop.call_later(max(start + index / rate - now, TICK_S), wake.set_result, None)
            await wake
    while pacer.outstanding:
        pacer.all_answered = loop.create_future()
        try:
            await asyncio.wait_for(pacer.all_answered, 1.0)
        except TimeoutError:
            pacer.time_out(time.perf_counter())
    result.cpu_s = time.process_time() - cpu_before
    pacer.close()
    return result


def open_loop(host: str, port: int, posts: Sequence[Post], rate: float, duration_s: float,
              connections: int) -> Result:
    """Send `rate` requests a second on a fixed schedule for `duration_s`, whatever the answers' pace."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_paced(host, port, posts, rate, duration_s, connections))
