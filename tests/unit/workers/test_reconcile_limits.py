"""The sweep's change limiter, a pure rule over a run's counts."""
from __future__ import annotations

import pytest

from erp_sync.shared.settings import Settings
from erp_sync.workers.reconcile_limits import Tally, held_reason

DEFAULTS = Settings()


@pytest.mark.parametrize(("tally", "setting"), [
    (Tally(skus=100, in_stock=100, changed=6, zeroed=0, missing=0), "RECONCILE_MAX_CHANGED_SHARE"),
    (Tally(skus=100, in_stock=100, changed=3, zeroed=3, missing=0), "RECONCILE_MAX_ZEROED_SHARE"),
    (Tally(skus=100, in_stock=100, changed=0, zeroed=0, missing=3), "RECONCILE_MAX_MISSING_SHARE"),
])
def test_a_count_past_its_share_holds_the_run_naming_the_setting(tally, setting):
    reason = held_reason(DEFAULTS, tally)
    assert reason is not None and setting in reason


def test_counts_at_their_share_pass():
    assert held_reason(DEFAULTS, Tally(skus=100, in_stock=100, changed=5, zeroed=2, missing=2)) is None


def test_a_share_of_one_turns_its_limit_off():
    settings = DEFAULTS.model_copy(update={"reconcile_max_changed_share": 1.0, "reconcile_max_zeroed_share": 1.0,
                                           "reconcile_max_missing_share": 1.0})
    assert held_reason(settings, Tally(skus=10, in_stock=10, changed=10, zeroed=10, missing=10)) is None


def test_an_empty_shop_holds_nothing():
    assert held_reason(DEFAULTS, Tally(skus=0, in_stock=0, changed=0, zeroed=0, missing=0)) is None
