"""The sweeps' drift as a bar chart, laid out here and drawn as SVG by the console's template."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 24
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    run_id: int
    status: str
    share: float


@dataclass(frozen=True)
class DriftChart:
    """Bars of each run's drifted share, oldest left; the alert share as a line; y-axis ticks."""

    width: int
    height: int
    bars: list[Bar]
    alert_y: float
    ticks: list[tuple[float, str]]
    left: int = LEFT
    bottom: float = TOP + PLOT_H


def drift_chart(runs: Sequence[Mapping[str, Any]], alert_share: float) -> DriftChart:
    """The chart of `runs` (newest first, as listed); a run that checked nothing drew no drift."""
    chronological = list(reversed(runs))
    shares = [run["mismatched"] / run["checked"] if run["checked"] else 0.0 for run in chronological]
    top = max([*shares, alert_share * 1.5, 0.01])
    slot = PLOT_W / max(len(chronological), 1)

    def y_of(share: float) -> float:
        return TOP + PLOT_H * (1 - share / top)

    bars = [Bar(x=LEFT + i * slot + slot * 0.15, y=y_of(share), width=slot * 0.7, height=TOP + PLOT_H - y_of(share),
                run_id=int(run["id"]), status=str(run["status"]), share=share)
            for i, (run, share) in enumerate(zip(chronological, shares, strict=True))]
    ticks = [(y_of(top * step / 4), f"{100 * top * step / 4:.1f}%") for step in range(5)]
    return DriftChart(WIDTH, HEIGHT, bars, y_of(alert_share), ticks)
