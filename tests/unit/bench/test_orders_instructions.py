"""Reading callgrind_control's counters: every thread's, the tenth and later ones too."""
from __future__ import annotations

import pytest

from bench.orders_instructions import instructions_shown
from bench.servers import ServerFailed

SHOWN = """PID 5510: /work/main/.venv/bin/python -m erp_sync worker orders

  Totals:     Ir 
   Th 1  640,919 
   Th 2  655,475 
   Th 9        0 
   Th10  1,000,000 
   Th11       12 

"""


def test_every_threads_count_is_added_up_the_tenth_and_later_included():
    assert instructions_shown(SHOWN) == 640_919 + 655_475 + 1_000_000 + 12


def test_an_answer_without_counts_is_an_error_not_zero():
    with pytest.raises(ServerFailed, match="no instruction count"):
        instructions_shown("No active callgrind runs detected.\n")
