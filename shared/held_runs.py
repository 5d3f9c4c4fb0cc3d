"""Which later runs overtake a held reconciliation run: its decider and the console both ask.

A later sweep that compared a newer snapshot, held or not, leaves a held run's changes out of date:
it can only be rejected. No SQLAlchemy here: the sweep's process imports this (shared/pg.py).
"""
from __future__ import annotations

OVERTAKING_STATUSES = ("succeeded", "held")


def overtakes(held_id: int, later_id: int, later_status: str) -> bool:
    """Whether the run `later_id` leaves the held run `held_id` only to be rejected."""
    return later_id > held_id and later_status in OVERTAKING_STATUSES
