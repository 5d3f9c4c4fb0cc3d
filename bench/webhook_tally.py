"""What the console's webhook tally adds to each request at the door: ns per count, beside the Prometheus counter it already pays.

The tally counts in memory under a lock; its writes happen on another thread every few seconds, so
only `count` is on the request's path. One JSON line goes to stdout:

    .venv/bin/python -m bench.webhook_tally [--calls 200000]
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import create_engine

from erp_sync.ingress.metrics import WEBHOOKS_REJECTED
from erp_sync.ingress.webhook_tally import REJECTED, WebhookTallies


def ns_per_call(call: Callable[[], object], calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    # Never written during the measurement: the flush interval outlasts it.
    tallies = WebhookTallies(create_engine("postgresql+psycopg://bench@127.0.0.1:1/none"), flush_interval_s=3600)
    counter = WEBHOOKS_REJECTED.labels(reason="signature")
    for call in (lambda: tallies.count(REJECTED, "signature"), counter.inc):  # warm up
        ns_per_call(call, 1000)
    tally_ns = min(ns_per_call(lambda: tallies.count(REJECTED, "signature"), args.calls) for _ in range(3))
    baseline_ns = min(ns_per_call(counter.inc, args.calls) for _ in range(3))
    print(json.dumps({"benchmark": "webhook_tally", "date": datetime.now(UTC).date().isoformat(),
                      "calls": args.calls, "tally_ns_per_count": round(tally_ns), "baseline": {
                          "prometheus_counter_ns_per_inc": round(baseline_ns)},
                      "ratio": round(tally_ns / baseline_ns, 2)}))


if __name__ == "__main__":
    main()
