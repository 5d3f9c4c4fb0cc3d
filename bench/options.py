"""The options the load benchmarks share: the paced load they offer, when to give a phase up, a baseline."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path


def load_parser(description: str, *, unit: str, phase: str, rate: float, duration: float,
                warmup: float) -> argparse.ArgumentParser:
    """A parser with --rate (`unit` a second offered for `phase`), --duration, --warmup, --drain-timeout, --baseline."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=rate, help=f"{unit} a second offered for {phase} ({rate:g})")
    parser.add_argument("--duration", type=float, default=duration, help=f"seconds of measured {phase} ({duration:g})")
    parser.add_argument("--warmup", type=float, default=warmup, help=f"seconds of unmeasured {unit} first ({warmup:g})")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="give a phase up after (300 s)")
    parser.add_argument("--baseline", type=Path, help="a saved earlier JSON line to compare against")
    return parser


def at_least_one(value: str) -> int:
    """An argparse type: a whole number of 1 or more (rounds, workers)."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return number


def numbers_parser(description: str, options: Sequence[tuple[str, int | float, str]]) -> argparse.ArgumentParser:
    """A parser with one numeric option per (flag, default, meaning), typed as its default, and --baseline."""
    parser = argparse.ArgumentParser(description=description)
    for flag, default, meaning in options:
        parser.add_argument(flag, type=type(default), default=default, help=f"{meaning} ({default:g})")
    parser.add_argument("--baseline", type=Path, help="a saved earlier JSON line to compare against")
    return parser


def numbers_arguments(description: str, options: Sequence[tuple[str, int | float, str]]
                      ) -> Callable[[list[str] | None], argparse.Namespace]:
    """A benchmark's `parse_args(argv)` over `numbers_parser`'s options."""
    return numbers_parser(description, options).parse_args
