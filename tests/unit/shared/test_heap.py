"""The collector paused over a block of work: nothing collected automatically inside, all as before after it."""
from __future__ import annotations

import gc

from erp_sync.shared.heap import collector_paused


def test_the_collector_is_paused_inside_the_block_and_running_again_after_it():
    assert gc.isenabled()

    with collector_paused():
        inside = gc.isenabled()
        with collector_paused():  # a block within a block leaves the pause to the outer one
            nested = gc.isenabled()
        after_nested = gc.isenabled()

    assert (inside, nested, after_nested) == (False, False, False)
    assert gc.isenabled()


def test_the_collector_runs_again_when_the_block_fails():
    try:
        with collector_paused():
            raise RuntimeError("the batch failed")
    except RuntimeError:
        pass

    assert gc.isenabled()


def test_a_collector_the_process_turned_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
