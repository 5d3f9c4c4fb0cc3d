"""From a webhook's 202 to its figure in the read API, at a fixed offered rate.

Each event goes out at its scheduled time on one pool of keep-alive connections; after its 202
the same task polls `GET /api/v1/inventory/<sku>` on a second pool, pausing after each answer,
until `erp_quantity` reaches the event's figure. The latency ends when that answer arrives, so it
is an upper bound, late by at most one pause and one round trip. The pause is the poll interval,
or SLOWER_AFTER of the time waited so far if that is longer: a backlog must not multiply the
polls and steal the very CPU the worker needs to clear it.
"""
from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.events import StockEvent
from bench.loadgen import Pool, Post

INVISIBLE_AFTER_S = 10.0
HTTP_ERRORS = (OSError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.TimeoutError)
REQUEST_TIMEOUT_S = 10.0
SLOWER_AFTER = 0.05


@dataclass
class Visibility:
    """What one paced run saw."""

    sent: int = 0
    accepted: int = 0
    refused: int = 0
    never_visible: int = 0
    polls: int = 0
    from_202_s: list[float] = field(default_factory=list)
    from_schedule_s: list[float] = field(default_factory=list)
    send_lags_s: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Pace:
    rate: float
    poll_interval_s: float
    post_connections: int
    poll_connections: int
    # Follow every Nth event only: polls go through the same ingress as the load, and polling
    # every event would double its work and measure the poller rather than the worker.
    sample_every: int = 1


def percentile_ms(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1] * 1000


async def _request(pool: Pool, wire: bytes) -> tuple[int, bytes] | None:
    try:
        connection = await pool.acquire()
    except OSError:
        return None
    healthy = False
    try:
        answer = await asyncio.wait_for(connection.fetch(wire), REQUEST_TIMEOUT_S)
        healthy = True
        return answer
    except HTTP_ERRORS:
        return None
    finally:
        pool.release(connection, healthy)


def _shows(answer: tuple[int, bytes] | None, quantity: int) -> bool:
    # Figures only rise per SKU, so a later one also proves this one was applied (or overtaken).
    return answer is not None and answer[0] == 200 and json.loads(answer[1])["erp_quantity"] >= quantity


async def _follow(posts: Pool, polls: Pool, post: bytes, poll: bytes | None, quantity: int, scheduled: float,
                  pace: Pace, seen: Visibility) -> None:
    loop = asyncio.get_running_loop()
    answer = await _request(posts, post)
    if answer is None or answer[0] != 202:
        seen.refused += 1
        return
    seen.accepted += 1
    if poll is None:
        return
    accepted_at = loop.time()
    while True:
        answer = await _request(polls, poll)
        seen.polls += 1
        now = loop.time()
        if _shows(answer, quantity):
            seen.from_202_s.append(now - accepted_at)
            seen.from_schedule_s.append(now - scheduled)
            return
        if now - accepted_at > INVISIBLE_AFTER_S:
            seen.never_visible += 1
            return
        await asyncio.sleep(max(pace.poll_interval_s, (now - accepted_at) * SLOWER_AFTER))


async def paced(host: str, ports: tuple[int, int], token: str, events: Sequence[StockEvent],
                headers: Sequence[dict[str, str]], pace: Pace) -> Visibility:
    """Offer `events` to the door at `pace.rate` a second and follow each one to the storefront API."""
    loop = asyncio.get_running_loop()
    port, api_port = ports
    posts, polls = Pool(host, port, pace.post_connections), Pool(host, api_port, pace.poll_connections)
    seen, tasks = Visibility(), []
    start = loop.time() + 0.01
    for index, (event, header) in enumerate(zip(events, headers, strict=True)):
        scheduled = start + index / pace.rate
        if (delay := scheduled - loop.time()) > 0:
            await asyncio.sleep(delay)
        seen.send_lags_s.append(max(0.0, loop.time() - scheduled))
        post = Post("/webhooks/erp", event.body, header).wire(host, port)
        poll = (f"GET /api/v1/inventory/{event.sku} HTTP/1.1\r\nHost: {host}:{api_port}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode("latin-1")
                if index % pace.sample_every == 0 else None)
        tasks.append(asyncio.create_task(_follow(posts, polls, post, poll, event.quantity, scheduled, pace, seen)))
        seen.sent += 1
    await asyncio.gather(*tasks)
    posts.close()
    polls.close()
    return seen
