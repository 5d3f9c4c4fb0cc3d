"""CPU time from Linux /proc: how busy the machine was, and what one process or the database spent."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine, text

STAT = Path("/proc/stat")
IDLE_FIELDS = (3, 4)  # idle, iowait


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(value) for value in STAT.read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # guest time is counted inside user time already
    return total - sum(fields[i] for i in IDLE_FIELDS), total


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of all CPUs' time that was busy between two readings, 0 to 1."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


# Every other server process on the benchmark's database: the backends of the processes under test.
_BACKENDS = text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of a process's threads so far (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in status if "ctxt_switches:" in line)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants still running (a server's worker processes)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return process_cpu_s(pid) + sum(tree_cpu_s(child) for child in children)


def broker_pids() -> list[int]:
    """RabbitMQ's processes on this machine: its Erlang VM, beam.smp, shared by every vhost."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "beam.smp":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


def broker_cpu_s(pids: Sequence[int] | None = None) -> float:
    """CPU seconds spent so far by RabbitMQ on this machine (by `pids`, found once, or found now)."""
    return sum(process_cpu_s(pid) for pid in (broker_pids() if pids is None else pids))


def database_cpu_s(engine: Engine) -> float:
    """CPU seconds spent so far by the PostgreSQL backends on `engine`'s database (PostgreSQL on this machine)."""
    with engine.connect() as connection:
        return sum(process_cpu_s(pid) for pid in connection.execute(_BACKENDS).scalars())
