"""/metrics adds up every worker process; the live gauges of a process that has exited drop out."""
from __future__ import annotations

import os
from pathlib import Path

from erp_sync.ingress.metrics import forget_dead_processes


def _pid_never_used() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_a_dead_process_keeps_its_counts_and_loses_its_live_gauges(tmp_path):
    # given the metric files of a running process and of one that has exited
    dead, alive = _pid_never_used(), os.getpid()
    names = [f"gauge_livesum_{dead}.db", f"gauge_liveall_{dead}.db", f"counter_{dead}.db", f"histogram_{dead}.db",
             f"gauge_all_{dead}.db", f"gauge_livesum_{alive}.db", f"counter_{alive}.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")

    # when /metrics is scraped
    forget_dead_processes(str(tmp_path))

    # then only the dead process's live gauges are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        set(names) - {f"gauge_livesum_{dead}.db", f"gauge_liveall_{dead}.db"})
