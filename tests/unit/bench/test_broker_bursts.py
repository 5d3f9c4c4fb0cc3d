"""RabbitMQ's busy windows, from the CPU it spent in each."""
from __future__ import annotations

import pytest

from bench.broker_bursts import Bursts


def test_a_window_in_which_the_broker_took_most_of_the_machine_is_a_busy_one():
    # given two cores, and RabbitMQ spending 0.02 s, then 0.18 s (a WAL rollover), then 0.05 s in
    # windows of 0.1 s, and 0.1 s in a window that lasted 0.2 s (the sampler woke late)
    bursts = Bursts(cpus=2, windows=[(0.1, 0.02), (0.1, 0.18), (0.1, 0.05), (0.2, 0.1)])

    # then its peak is 90% of the machine, and only that window counts as busy
    assert bursts.shares == pytest.approx([0.1, 0.9, 0.25, 0.25])
    assert bursts.peak_share == pytest.approx(0.9)
    assert bursts.busy_windows == 1


def test_no_window_no_burst():
    assert (Bursts(cpus=2).peak_share, Bursts(cpus=2).busy_windows) == (0.0, 0)
