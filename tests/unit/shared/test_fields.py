"""Identifiers: a NUL, a control character, or an id longer than its column or an AMQP message id is not one."""
from __future__ import annotations

import pytest

from erp_sync.shared.fields import is_storable_identifier


@pytest.mark.parametrize("value", ["IPH15-128-BLK", "A/B 1", "Ü-é-名", "x" * 100, "名" * 85])
def test_ids_storage_can_hold_are_identifiers(value):
    assert is_storable_identifier(value)


@pytest.mark.parametrize("value", ["", "\x00", "SKU\x00", "SKU\nALERT", "SKU\r", "\x7f", "x" * 101, "名" * 86, "ORD-\ud800"])
def test_nul_control_characters_and_overlong_ids_are_not(value):
    assert not is_storable_identifier(value)
