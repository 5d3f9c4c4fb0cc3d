"""The frame every benchmark runs in: clean-up on Ctrl-C and SIGTERM, baseline beside, one JSON line."""
from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from pika.exceptions import AMQPError
from sqlalchemy.exc import SQLAlchemyError

from bench.phases import progress
from bench.report import beside_baseline, emit, load_baseline
from bench.servers import ServerFailed
from erp_sync.shared.errors import ErpSyncError

EXIT_OK, EXIT_FAILURE, EXIT_INTERRUPTED = 0, 1, 130
# What ends a worker benchmark with one line instead of a traceback.
SERVICE_FAILURES = (ServerFailed, ErpSyncError, RuntimeError, subprocess.CalledProcessError, OSError, AMQPError,
                    SQLAlchemyError)


def quiet_logging() -> None:
    """Warnings and errors only: the publisher reports its own orderly close as a warning, not news here."""
    logging.basicConfig(level=logging.WARNING, format="bench: %(name)s: %(message)s")
    logging.getLogger("erp_sync.shared.publisher").setLevel(logging.ERROR)


def benchmark_main(
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], dict[str, Any]],
    compared: Sequence[str],
    failures: tuple[type[BaseException], ...] = SERVICE_FAILURES,
) -> Callable[[list[str] | None], int]:
    """A benchmark's `main(argv)`: parse its arguments, quiet the logs, then `run_benchmark`."""
    def main(argv: list[str] | None = None) -> int:
        args = parse_args(argv)
        quiet_logging()
        return run_benchmark(run, args, compared, failures)

    return main


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # SystemExit unwinds through every `finally`: servers stopped, vhost and database dropped.
    sys.exit(128 + signum)


def run_benchmark(
    run: Callable[[argparse.Namespace], dict[str, Any]],
    args: argparse.Namespace,
    compared: Sequence[str],
    failures: tuple[type[BaseException], ...],
) -> int:
    """Run one benchmark and print its figures, beside `args.baseline` when given; returns the exit code."""
    baseline = load_baseline(args.baseline) if args.baseline else None  # a bad file fails before the run
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.monotonic()
    try:
        result = run(args)
    except KeyboardInterrupt:
        progress("interrupted; processes stopped, vhost and database dropped")
        return EXIT_INTERRUPTED
    except failures as exc:
        progress(f"failed: {exc} {getattr(exc, 'stderr', None) or ''}".rstrip())
        return EXIT_FAILURE
    result.setdefault("run_s", round(time.monotonic() - started))
    if baseline is not None:
        result |= beside_baseline(result, baseline, compared)
    progress(f"run took {result['run_s']} s")
    emit(result)
    return EXIT_OK
