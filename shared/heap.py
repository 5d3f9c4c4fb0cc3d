"""A long-running process's garbage collector, once it has started."""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_what_is_loaded() -> None:
    """Move everything alive now (modules, the app or models, compiled statements) out of the collector's sight.

    It lives as long as the process: left in view, every full collection walks all of it, 0.1-0.2 s
    in a door worker with every request waiting, and half of a catalog worker's CPU over a batch.
    """
    gc.collect()
    gc.freeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection while the block runs; the next allocation after it may start one.

    For work whose objects all live until it ends: a catalog batch of 100 groups of 1,000 variants
    holds a million of them, which each collection on the way walked again, a sixth of the worker's
    CPU. Reference counting still frees what dies meanwhile; a cycle made meanwhile waits for the
    first collection after the block.
    """
    if not gc.isenabled():  # paused already, by an enclosing block or by the process
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
