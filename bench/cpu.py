"""How busy the machine's CPUs were over a stretch of time (Linux /proc/stat), for telling a saturated machine apart."""
from __future__ import annotations

from pathlib import Path

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
