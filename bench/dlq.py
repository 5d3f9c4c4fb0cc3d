"""What `erp-sync dlq` holds in memory against how much is parked.

A bulk load whose groups all fail parks a thousand bodies of a few hundred kilobytes each, and the
person on call lists, shows and replays them. Each round parks `--messages` catalog bodies of about
`--body-kb` on the catalog's parking queue of a private vhost, then runs `erp-sync dlq list`,
`dlq show` (the last id) and `dlq replay --all` as processes and reads each one's peak resident
memory (`ru_maxrss`, `bench.peak_memory`). The baseline is the same three commands over a single parked
message, in the same run: what the command needs whatever is parked. One JSON line goes to stdout:

    .venv/bin/python -m bench.dlq [--messages 400] [--body-kb 256]
"""
from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from typing import Any

from bench import queues
from bench.harness import benchmark_main
from bench.peak_memory import run_measured
from bench.report import machine, ratio
from bench.sandbox import private_vhost
from bench.servers import erp_sync
from erp_sync.shared.consumer import Delivery, parked
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.settings import load_settings
from erp_sync.shared.topology import WORK_QUEUES

QUEUE = WORK_QUEUES["catalog"]
COMMAND_TIMEOUT_S = 600
COMMANDS = {"list": ("dlq", "list", "--json"), "show": ("dlq", "show"), "replay": ("dlq", "replay", "--all")}


def park(amqp_url: str, count: int, body_kb: int) -> list[str]:
    """`count` bodies of `body_kb` KiB parked as the catalog worker parks them; their ids."""
    padding = "x" * (body_kb * 1024)
    ids = [f"evt_bench_dlq_{n:06d}" for n in range(count)]
    publisher = ConfirmingPublisher(amqp_url, confirm_timeout_s=60.0)
    try:
        for n, message_id in enumerate(ids):
            body = f'{{"event_id": "{message_id}", "padding": "{padding}"}}'.encode()
            publisher.publish(parked(QUEUE, Delivery(n, body, message_id, "application/json"), "bench: parked"))
    finally:
        publisher.close()
    held = queues.depth(amqp_url, QUEUE.parking_queue)
    if held != count:
        raise RuntimeError(f"{QUEUE.parking_queue} holds {held} messages after parking {count}")
    return ids


def peak_rss(args: tuple[str, ...], env: dict[str, str]) -> dict[str, float]:
    """Run one command to its end, its output discarded: its peak resident memory (MiB) and wall seconds."""
    done = run_measured(erp_sync(*args), env, COMMAND_TIMEOUT_S, keep_stdout=False)
    return {"rss_mb": done.peak_mb, "s": done.seconds}


def measure(amqp_url: str, count: int, body_kb: int) -> dict[str, dict[str, float]]:
    """Each command's peak memory and time over `count` parked bodies; every one is back on the work queue after."""
    ids = park(amqp_url, count, body_kb)
    env = os.environ | {"AMQP_URL": amqp_url}
    figures = {name: peak_rss(args + ((ids[-1],) if name == "show" else ()), env) for name, args in COMMANDS.items()}
    replayed = queues.depth(amqp_url, QUEUE.name)
    if replayed != count or queues.depth(amqp_url, QUEUE.parking_queue) != 0:
        raise RuntimeError(f"the replay put {replayed} of {count} messages back on {QUEUE.name}")
    queues.purge(amqp_url, QUEUE.name)
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()
    settings = load_settings()
    with private_vhost(settings.amqp_url, settings.retry_delays_ms) as amqp_url:
        baseline = measure(amqp_url, 1, args.body_kb)
        loaded = measure(amqp_url, args.messages, args.body_kb)
    result: dict[str, Any] = {"benchmark": "dlq", "at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "messages": args.messages, "body_kb": args.body_kb,
                              "parked_mb": round(args.messages * args.body_kb / 1024, 1)}
    for name in COMMANDS:
        result |= {f"{name}_rss_mb": loaded[name]["rss_mb"], f"{name}_s": loaded[name]["s"],
                   f"{name}_rss_mb_one_parked": baseline[name]["rss_mb"],
                   f"{name}_rss_ratio_to_one_parked": ratio(loaded[name]["rss_mb"], baseline[name]["rss_mb"])}
    return result | machine((load_start, os.getloadavg()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dlq", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, help="bodies parked (400)")
    parser.add_argument("--body-kb", type=int, default=256, help="each body's size in KiB (256)")
    parser.add_argument("--baseline", help="a JSON line of an earlier run, to print beside this one")
    return parser.parse_args(argv)


main = benchmark_main(parse_args, run, compared=[f"{name}_rss_mb" for name in COMMANDS])

if __name__ == "__main__":
    raise SystemExit(main(None))
