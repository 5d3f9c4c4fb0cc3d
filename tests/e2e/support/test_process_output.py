"""The output of a process the tests started, read while it still writes."""
from __future__ import annotations

import sys

from tests.support import cli

WRITER = "for n in range(20000): print(f'line {n}', flush=True)"


def test_reading_a_running_process_output_loses_none_of_its_lines() -> None:
    # given a process writing 20,000 lines, one write each
    process = cli.start_logged([sys.executable, "-c", WRITER])

    # when its output is read again and again while it writes
    while process.poll() is None:
        cli.output_of(process)

    # then every line is there, in order, the first ones too
    assert cli.stop(process).splitlines() == [f"line {n}" for n in range(20000)]
