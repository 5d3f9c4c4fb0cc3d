"""The errors a `failed` reconciliation run is recorded with that its writer and its readers both tell apart.

No SQLAlchemy here: the sweep's process imports this, and its peak memory is a target (shared/pg.py).
"""
from __future__ import annotations

# An operator stopped it (Ctrl-C on `reconcile --now`): no failure to alert on.
STOPPED_BY_OPERATOR = "interrupted (Ctrl-C), nothing changed"
