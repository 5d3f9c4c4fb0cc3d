"""Identifiers: a NUL, a control character, or an id longer than its column or an AMQP message id is not one;
prices: told of their decimal places before their digits."""
from __future__ import annotations

import sys
import unicodedata

import pytest
from pydantic import TypeAdapter, ValidationError

from erp_sync.shared.fields import (
    _INVISIBLE_CHARACTER, NAMED_ID_MAX_BYTES, Money, id_named_in, is_storable_identifier,
)


@pytest.mark.parametrize("value", ["IPH15-128-BLK", "A/B 1", "Ü-é-名", "x" * 100, "名" * 85])
def test_ids_storage_can_hold_are_identifiers(value):
    assert is_storable_identifier(value)


@pytest.mark.parametrize("value", ["", "\x00", "SKU\x00", "SKU\nALERT", "SKU\r", "\x7f", "x" * 101, "名" * 86, "ORD-\ud800"])
def test_nul_control_characters_and_overlong_ids_are_not(value):
    assert not is_storable_identifier(value)


@pytest.mark.parametrize("price", [0.1 + 0.2, "0.30000000000000004", 1.234, "10.125", 1e-7])
def test_a_price_with_more_than_two_decimal_places_is_told_so_whatever_its_digits(price):
    # 0.1 + 0.2 is a float's 0.30000000000000004: the ERP must hear of its places, not of 12 digits
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(Money).validate_python(price)

    [error] = refused.value.errors()
    assert (error["type"], error["msg"]) == ("decimal_max_places", "Decimal input should have no more than 2 decimal places")


@pytest.mark.parametrize(("price", "kept"), [(0.3, "0.30"), ("1.500", "1.50"), (7, "7.00")])
def test_a_price_of_two_places_or_fewer_is_kept_in_cents(price, kept):
    assert str(TypeAdapter(Money).validate_python(price)) == kept


def test_the_invisible_characters_refused_in_ids_are_unicodes_format_and_separator_categories():
    # the pattern is written out for speed; this Python's Unicode database says what it must hold, and
    # what else it may (code points a later Unicode made format characters, unassigned in this one)
    categories = {code: unicodedata.category(chr(code)) for code in range(sys.maxunicode + 1)}
    matched = {code for code in categories if _INVISIBLE_CHARACTER.fullmatch(chr(code))}

    assert {code for code, category in categories.items() if category in ("Cf", "Zl", "Zp")} <= matched
    assert {categories[code] for code in matched} <= {"Cf", "Zl", "Zp", "Cn"}


def test_a_body_larger_than_any_message_erp_sync_takes_is_not_read_for_its_id():
    # a 52 MB order parked without a message id was parsed for its id, 240 MB each time it was named
    named = b'{"order_id": "ORD-1", "line_items": []'
    at_the_limit = named + b" " * (NAMED_ID_MAX_BYTES - len(named) - 1) + b"}"

    assert id_named_in(at_the_limit) == "ORD-1"
    assert id_named_in(at_the_limit[:-1] + b" }") is None
