"""A benchmark's one JSON line, and its figures set beside a baseline run's."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from statistics import median
from typing import Any

LoadAverages = tuple[tuple[float, float, float], tuple[float, float, float]]  # at the start, at the end


def load_baseline(path: Path) -> dict[str, Any]:
    """The last JSON line of `path` (a saved earlier run)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} holds no JSON line")
    figures = json.loads(lines[-1])
    if not isinstance(figures, dict):
        raise ValueError(f"{path}: the last line is not a JSON object")
    return figures


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def beside_baseline(figures: dict[str, Any], baseline: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """`baseline` (its date and `keys`) and the change of each key in percent, to merge into `figures`."""
    kept = {key: baseline[key] for key in ("date", *keys) if key in baseline}
    change: dict[str, float | None] = {}
    for key in keys:
        now, then = _number(figures.get(key)), _number(baseline.get(key))
        if now is not None and then is not None:
            change[key] = round((now - then) / then * 100, 1) if then else None
    return {"baseline": kept, "change_pct": change}


def ratio(value: float, base: float) -> float | None:
    """`value` / `base`, rounded for a JSON line; None when there is no base to compare with."""
    return round(value / base, 3) if base else None


def ratio_medians(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """The median of each `..._ratio_...` figure over rounds (`<name>_median`), rounds without it left out.

    Single rounds on this machine scatter by several percent: a median of alternating rounds does not.
    """
    names = sorted({name for line in rounds for name in line if "_ratio_" in name})
    return {f"{name}_median": round(median(values), 3) for name in names
            if (values := [line[name] for line in rounds if line.get(name) is not None])}


def python_yardstick_ms(repeats: int = 5) -> float:
    """CPU milliseconds of a fixed piece of pure Python (JSON, dicts, strings), the least of `repeats`.

    The machines these benchmarks run on differ in speed by more than some of the gains they show
    (a bare endpoint cost 0.25 ms of CPU a request on one and 0.41 on another): a run's CPU figures
    divided by this one compare across machines.
    """
    document = json.dumps([{"sku": f"SKU-{n}", "quantity": n, "tags": ["a", "b"]} for n in range(200)])
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(100):
            items = json.loads(document)
            {item["sku"].lower(): item["quantity"] * 2 for item in items}
        best = min(best, time.process_time() - started)
    return round(best * 1000, 2)


def wakeup_yardstick_us(round_trips: int = 2000, repeats: int = 3) -> float:
    """CPU microseconds of one round trip of a byte between two threads over a socket pair, the least of `repeats`.

    What the services spend most on besides Python: a send, a thread woken, a receive. On one VM
    the same code cost half as much again CPU per inventory event on one day as on another at the
    same `python_yardstick_ms`; this one tells such machines apart.
    """
    best = float("inf")
    for _ in range(repeats):
        here, there = socket.socketpair()
        echo = threading.Thread(target=_echo, args=(there, round_trips))
        echo.start()
        started = time.process_time()
        for _ in range(round_trips):
            here.sendall(b"x")
            here.recv(1)
        best = min(best, time.process_time() - started)
        echo.join()
        here.close()
        there.close()
    return round(best / round_trips * 1e6, 2)


def _echo(sock: socket.socket, round_trips: int) -> None:
    for _ in range(round_trips):
        sock.sendall(sock.recv(1))


def machine(load: LoadAverages) -> dict[str, Any]:
    """The machine's CPUs, speeds (`python_yardstick_ms`, `wakeup_yardstick_us`) and load at the run's start and end."""
    return {"cpus": os.cpu_count(), "python_yardstick_ms": python_yardstick_ms(),
            "wakeup_yardstick_us": wakeup_yardstick_us(),
            "loadavg_start": [round(x, 2) for x in load[0]], "loadavg_end": [round(x, 2) for x in load[1]]}


def emit(figures: dict[str, Any]) -> None:
    print(json.dumps(figures, separators=(",", ":")), flush=True)
