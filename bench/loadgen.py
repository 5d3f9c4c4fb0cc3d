"""An HTTP/1.1 load generator on asyncio: keep-alive connections, and a closed loop flat out.

The open loop at a fixed rate is bench/paced.py's, which reuses `Post` and `Result`.
"""
from __future__ import annotations

import asyncio
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Post:
    """One POST, prepared once and sent many times."""

    path: str
    body: bytes
    headers: dict[str, str]

    def wire(self, host: str, port: int) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(self.body)}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class Result:
    """What one run saw: answers by status, their latencies, failed exchanges."""

    duration_s: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    send_lags_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # the generator's own, where it measures it

    def record(self, status: int, latency_s: float) -> None:
        self.statuses[status] += 1
        self.latencies_s.append(latency_s)

    def percentile_ms(self, fraction: float, values: list[float] | None = None) -> float:
        ordered = sorted(self.latencies_s if values is None else values)
        if not ordered:
            return math.nan
        rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
        return ordered[rank - 1] * 1000


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        """Send one request and read its whole answer; the status code."""
        status, _body = await self.fetch(request)
        return status

    async def fetch(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and read its whole answer; the status code and the body."""
        self._writer.write(request)
        head = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
        # Every server here sends Content-Length; anything else ends the connection's reuse.
        body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        self.reusable = "content-length" in headers and headers.get("connection") != "close"
        return status, body

    def close(self) -> None:
        self._writer.close()


class Pool:
    """At most `size` keep-alive connections, opened on first need; a waiter queues for one."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self._host, self._port = host, port
        self._slots: asyncio.Queue[Connection | None] = asyncio.Queue()
        for _ in range(size):
            self._slots.put_nowait(None)  # None: a free slot with no connection open yet

    async def acquire(self) -> Connection:
        connection = await self._slots.get()
        if connection is not None:
            return connection
        try:
            return await Connection.open(self._host, self._port)
        except BaseException:
            self._slots.put_nowait(None)
            raise

    def release(self, connection: Connection, healthy: bool) -> None:
        if healthy and connection.reusable:
            self._slots.put_nowait(connection)
            return
        connection.close()
        self._slots.put_nowait(None)

    def close(self) -> None:
        while not self._slots.empty():
            connection = self._slots.get_nowait()
            if connection is not None:
                connection.close()


async def _one(pool: Pool, request: bytes, scheduled: float, result: Result) -> None:
    loop = asyncio.get_running_loop()
    try:
        connection = await pool.acquire()
    except OSError:
        result.errors += 1
        return
    healthy = False
    try:
        status = await asyncio.wait_for(connection.exchange(request), REQUEST_TIMEOUT_S)
        healthy = True
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            asyncio.TimeoutError):
        result.errors += 1
        return
    finally:
        pool.release(connection, healthy)
    result.record(status, loop.time() - scheduled)


async def closed_loop(host: str, port: int, posts: Sequence[Post], duration_s: float, connections: int) -> Result:
    """Keep `connections` requests in flight for `duration_s`, each sent as the last is answered."""
    loop = asyncio.get_running_loop()
    pool, result = Pool(host, port, connections), Result()
    wires = [post.wire(host, port) for post in posts]
    start = loop.time()
    deadline = start + duration_s

    async def client(offset: int) -> None:
        for request in itertools.islice(itertools.cycle(wires), offset, None):
            if loop.time() >= deadline:
                return
            await _one(pool, request, loop.time(), result)

    await asyncio.gather(*(client(n) for n in range(connections)))
    result.duration_s = loop.time() - start
    pool.close()
    return result
