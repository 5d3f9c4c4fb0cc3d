"""What pika costs a consumer a message: its BlockingConnection, which the workers use, against its SelectConnection.

Issue 19 asks whether another AMQP client, or another way of using pika, would consume for less.
Each round fills a quorum queue of a private vhost with --messages small messages (a push
message's size) and drains it with a prefetch of 200, in this process, four ways: through a
BlockingConnection (the baseline, as `shared/consumer.py` consumes) and through a SelectConnection,
each acking every message on its own (as the orders push does) and acking a hundred at once (as the
batch consumers do). CPU is this process's while it drains; the least of --rounds rounds counts. One
JSON line goes to stdout:

    .venv/bin/python -m bench.amqp_consume [--messages 20000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel

from bench.harness import benchmark_main
from bench.report import machine
from bench.sandbox import private_vhost
from erp_sync.shared.settings import load_settings

QUEUE = "bench-consume"
PREFETCH = 200
BODY = json.dumps({"order_id": "ORD-20261206-000001"}).encode()
Drain = Callable[[str, int, int], float]  # (amqp_url, messages, ack_every) -> CPU seconds


def fill(amqp_url: str, messages: int, timeout_s: float = 60.0) -> None:
    """`messages` on the queue: published without confirms (quicker), then counted until all are there."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json", message_id="bench")
    for _ in range(messages):
        channel.basic_publish("", QUEUE, BODY, properties)
    deadline = time.monotonic() + timeout_s
    while (queued := channel.queue_declare(QUEUE, passive=True).method.message_count) < messages:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {queued} of {messages} messages reached the queue")
        time.sleep(0.05)
    connection.close()


def _ack(channel: BlockingChannel | Channel, tag: int, taken: int, messages: int, ack_every: int) -> None:
    if ack_every == 1:
        channel.basic_ack(tag)
    elif taken % ack_every == 0 or taken == messages:
        channel.basic_ack(tag, multiple=True)


def drain_blocking(amqp_url: str, messages: int, ack_every: int) -> float:
    """As the workers' consumer does: deliveries buffered by the callback, acked from the loop."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    buffered: list[int] = []
    channel.basic_consume(QUEUE, lambda _channel, method, _properties, _body: buffered.append(method.delivery_tag))
    started, taken = time.process_time(), 0
    while taken < messages:
        connection.process_data_events(time_limit=0.25)
        for tag in buffered:
            taken += 1
            _ack(channel, tag, taken, messages, ack_every)
        buffered.clear()
    spent = time.process_time() - started
    connection.close()
    return spent


def drain_select(amqp_url: str, messages: int, ack_every: int) -> float:
    """The same with pika's callback connection: each ack is written with the loop's next write, not flushed alone."""
    state: dict[str, Any] = {"taken": 0}

    def on_message(channel: Channel, method: Any, _properties: Any, _body: bytes) -> None:
        state["taken"] += 1
        _ack(channel, method.delivery_tag, state["taken"], messages, ack_every)
        if state["taken"] == messages:
            state["spent"] = time.process_time() - state["started"]
            connection.close()

    def on_channel(channel: Channel) -> None:
        def consume(_frame: Any) -> None:
            state["started"] = time.process_time()
            channel.basic_consume(QUEUE, on_message)
        channel.basic_qos(prefetch_count=PREFETCH, callback=consume)

    connection: pika.SelectConnection = pika.SelectConnection(
        pika.URLParameters(amqp_url), on_open_callback=lambda opened: opened.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda _connection, error: connection.ioloop.stop(),
        on_close_callback=lambda _connection, _reason: connection.ioloop.stop())
    connection.ioloop.start()
    if "spent" not in state:
        raise RuntimeError(f"the select consumer stopped after {state['taken']} of {messages} messages")
    return float(state["spent"])


WAYS: dict[str, tuple[Drain, int]] = {
    "blocking_ack_each": (drain_blocking, 1), "select_ack_each": (drain_select, 1),
    "blocking_ack_100": (drain_blocking, 100), "select_ack_100": (drain_select, 100),
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()
    settings = load_settings()
    best: dict[str, float] = {}
    with private_vhost(settings.amqp_url, settings.retry_delays_ms) as amqp_url:
        for _ in range(args.rounds):
            for name, (drain, ack_every) in WAYS.items():
                fill(amqp_url, args.messages)
                spent_us = drain(amqp_url, args.messages, ack_every) / args.messages * 1e6
                best[name] = min(best.get(name, spent_us), spent_us)
    figures = {name: round(value, 1) for name, value in best.items()}
    return {"benchmark": "amqp_consume", "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": args.messages, "rounds": args.rounds, "cpu_us_per_message": figures,
            "baseline": {"blocking_ack_each": figures["blocking_ack_each"], "blocking_ack_100": figures["blocking_ack_100"]},
            "select_to_blocking_ack_each": round(best["select_ack_each"] / best["blocking_ack_each"], 2),
            "select_to_blocking_ack_100": round(best["select_ack_100"] / best["blocking_ack_100"], 2),
            **machine((load_start, os.getloadavg()))}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages drained each way, each round (20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the least CPU of each way counts (3)")
    parser.add_argument("--baseline", help="a saved earlier JSON line to compare against")
    return parser.parse_args(argv)


main = benchmark_main(parse_args, run, ["select_to_blocking_ack_each", "select_to_blocking_ack_100"])

if __name__ == "__main__":
    raise SystemExit(main(None))
