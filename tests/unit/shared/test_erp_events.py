"""The ERP's events decoded without the ingress: every bad field named, money exact, the timestamp window."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from erp_sync.shared.erp_events import CatalogUpdate, InventoryChange, decode_event, decode_event_of, event_age_problem
from erp_sync.shared.errors import MessageDecodeError
from tests.support.bad_events import BAD_EVENTS, OUT_OF_WINDOW
from tests.support.factories import catalog_event, encode, inventory_event, variant_with

DECODER_REFUSES = [(body, fields) for name, body, fields in BAD_EVENTS if name not in OUT_OF_WINDOW]
DECODER_IDS = [name for name, _, _ in BAD_EVENTS if name not in OUT_OF_WINDOW]
NOW = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)
DAY_S, FIVE_MINUTES_S = 24 * 3600, 300


@pytest.mark.parametrize(("body", "fields"), DECODER_REFUSES, ids=DECODER_IDS)
def test_a_bad_event_is_refused_naming_every_bad_field_and_keeping_its_bytes(body, fields):
    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)

    assert sorted({d["field"] for d in refused.value.details}) == sorted(fields)
    assert all(d["message"] for d in refused.value.details)
    assert refused.value.raw == body


def test_the_spec_examples_decode_with_money_as_decimal():
    catalog = decode_event(encode(catalog_event()))
    inventory = decode_event(encode(inventory_event()))

    assert isinstance(catalog, CatalogUpdate) and isinstance(inventory, InventoryChange)
    assert catalog.data.variants[0].price == Decimal("79900.00")
    assert isinstance(catalog.data.variants[0].price, Decimal)
    assert (inventory.data.sku, inventory.data.new_quantity, inventory.data.quantity_change) == ("IPH15-128-BLK", 49, None)


def test_an_inventory_change_may_name_the_order_it_deducts():
    named = decode_event(encode(inventory_event(reference_id=" ORD-WEB-1001 ")))
    plain = decode_event(encode(inventory_event()))

    assert isinstance(named, InventoryChange) and isinstance(plain, InventoryChange)
    assert (named.data.reference_id, plain.data.reference_id) == ("ORD-WEB-1001", None)


def test_an_event_on_the_wrong_queue_is_refused():
    with pytest.raises(MessageDecodeError, match="expected event type inventory.change, got catalog.update"):
        decode_event_of(encode(catalog_event()), InventoryChange)


@pytest.mark.parametrize(
    ("stamped", "problem"),
    [
        (NOW - timedelta(seconds=DAY_S), None),
        (NOW - timedelta(seconds=DAY_S + 1), "older than"),
        (NOW + timedelta(seconds=FIVE_MINUTES_S), None),
        (NOW + timedelta(seconds=FIVE_MINUTES_S + 1), "in the future"),
    ],
)
def test_the_timestamp_window(stamped, problem):
    event = decode_event(encode({**inventory_event(), "timestamp": stamped.isoformat()}))

    found = event_age_problem(event, NOW, max_age_s=DAY_S, max_future_s=FIVE_MINUTES_S)

    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_refusal_lists_the_first_problems_and_counts_them_all():
    event = catalog_event(variants=[variant_with(sku=f"SKU-{n}", price="cheap") for n in range(30)])

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(encode(event))

    assert len(refused.value.details) == 20
    assert "30 problem(s), the first 20 listed" in str(refused.value)


@pytest.mark.parametrize("event_type", ["x" * 100_000, {"nested": ["y" * 100_000]}])
def test_an_unknown_event_type_is_named_in_a_refusal_of_bounded_size(event_type):
    with pytest.raises(MessageDecodeError) as refused:
        decode_event(encode({**inventory_event(), "event_type": event_type}))

    assert str(refused.value).startswith("unknown event_type ")
    assert len(str(refused.value)) < 300
    assert all(len(detail["message"]) < 400 for detail in refused.value.details)


@pytest.mark.parametrize("value", ["Black", 128, -1.5, True, 999_999_999_999_999, "x" * 1000])
def test_attribute_values_storage_and_workers_can_hold_are_kept(value):
    event = decode_event(encode(catalog_event(variants=[variant_with(attributes={"A": value})])))

    assert event.data.variants[0].attributes["A"] == value


@pytest.mark.parametrize("raw, kept", [(b"123456789012.345", True), (b"0.000001", True), (b"1.50", True),
                                       (b"12345678901.123456", False), (b"999999999999999.999999", False)])
def test_an_attribute_number_is_kept_only_if_storing_it_keeps_every_digit(raw, kept):
    # JSON numbers are stored and served as floats: 12345678901.123456 came back as 12345678901.123455
    body = encode(catalog_event(variants=[variant_with(attributes={"W": 123456789})])).replace(b"123456789", raw, 1)

    if kept:
        assert str(decode_event(body).data.variants[0].attributes["W"]) == raw.decode()
        return
    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)
    assert refused.value.details[0]["message"].endswith("at most 15 significant digits, at most 6 of them after the point")


@pytest.mark.parametrize("raw", [b"0e-999999999", b"0E-16384", b"0.000", b"1.5", b"1.00E+4"])
def test_a_price_is_kept_with_two_decimals_whatever_its_spelling(raw):
    # PostgreSQL refuses the text of 0E-16384 and beyond: a price must reach it as 0.00
    body = encode(catalog_event(variants=[variant_with(price=123456789)])).replace(b"123456789", raw, 1)

    price = decode_event(body).data.variants[0].price

    assert str(price) == {b"1.5": "1.50", b"1.00E+4": "10000.00"}.get(raw, "0.00")


@pytest.mark.parametrize("raw", [b"0.30000000000000004", b"14.399999999999999", b"10.125"])
def test_a_price_as_the_erp_sends_a_floats_residue_is_told_of_its_places(raw):
    # JSON numbers arrive as Decimal: the ERP must hear of the places to round, not of 12 digits in total
    body = encode(catalog_event(variants=[variant_with(price=123456789)])).replace(b"123456789", raw, 1)

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)

    assert refused.value.details == [{"field": "data.variants.0.price",
                                      "message": "Decimal input should have no more than 2 decimal places"}]


def stamped_event(timestamp: str) -> dict:
    return {**inventory_event(), "timestamp": timestamp}


@pytest.mark.parametrize("stamp", ['"20261206234235"', "1796600153", '"1796600153.44"', '"2026-12-06"',
                                   '"2026-12-06T10:00:00"', '"06/12/2026 10:00"', '"2026-12-06T10:00:00+05"'])
def test_a_timestamp_that_is_not_iso_8601_with_a_zone_is_told_what_is(stamp):
    # a compact local time or a Unix time was read as a date (the year 2612), then refused as "in the future"
    body = encode(stamped_event("STAMP")).replace(b'"STAMP"', stamp.encode())

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)

    [detail] = refused.value.details
    assert detail["field"] == "timestamp"
    assert detail["message"].startswith("expected an ISO 8601 date and time with a time zone, such as")


@pytest.mark.parametrize("stamp", ["2024-01-20T10:00:00Z", "2024-01-20T15:30:00.250+05:30", "2024-01-20 10:00:00z",
                                   "2024-01-20T05:00:00-0500"])
def test_iso_8601_timestamps_with_a_zone_are_read(stamp):
    event = decode_event(encode(stamped_event(stamp)))

    assert event.timestamp.astimezone(UTC).replace(microsecond=0) == datetime(2024, 1, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("stamp", ["2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5Z", "2017-01-01T05:29:60+05:30"])
def test_a_leap_second_is_read_as_the_last_second_before_it(stamp):
    # the ERP's clock may show 23:59:60; refused, the event was answered 400 and never sent again
    event = decode_event(encode(stamped_event(stamp)))

    assert event.timestamp.replace(microsecond=0) == datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("stamp", ["2016-12-31T10:15:60Z", "2016-12-31T23:59:60+05:30"])
def test_a_second_of_60_other_than_a_leap_second_is_refused(stamp):
    with pytest.raises(MessageDecodeError) as refused:
        decode_event(encode(stamped_event(stamp)))

    [detail] = refused.value.details
    assert detail == {"field": "timestamp",
                      "message": "a second of 60 is a leap second, which comes only at 23:59:60 UTC"}
    # a body an earlier door took is still applied, read as the second before
    assert decode_event_of(encode(stamped_event(stamp)), InventoryChange).timestamp.second == 59


@pytest.mark.parametrize("sku", ["SKU-1\u200b", "\u202eSKU-1", "SKU\u2028-1", "\ufeffSKU-1", "SKU\u00ad1"])
def test_an_id_with_an_invisible_character_is_refused_at_the_door_and_applied_as_queued(sku):
    # "SKU-1" and "SKU-1\u200b" look alike: a second stock row the shop would never show
    body = encode(inventory_event(sku=sku))

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)
    queued = decode_event_of(body, InventoryChange)

    [detail] = refused.value.details
    assert detail["field"] == "data.sku" and "invisible format characters" in detail["message"]
    assert queued.data.sku == sku


def test_a_misspelt_member_is_refused_naming_where_and_the_spelling_meant():
    # "isActive": false was ignored as an unknown member, and is_active's default left the product on sale
    media = [{"url": "https://cdn.example/1.jpg", "IsMain": True}]
    document = catalog_event(isActive=False, variants=[variant_with(sku="SPELT-1"),
                                                       variant_with(sku="SPELT-2", **{"Stock-Quantity": 5}, media=media)])

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(encode(document))

    assert refused.value.details == [
        {"field": "data", "message": "unknown member 'isActive': the field is spelt 'is_active'"},
        {"field": "data.variants.1", "message": "unknown member 'Stock-Quantity': the field is spelt 'stock_quantity'"},
        {"field": "data.variants.1.media.0", "message": "unknown member 'IsMain': the field is spelt 'is_main'"},
    ]


def test_members_the_spec_does_not_name_and_attributes_named_like_fields_are_kept_as_before():
    document = catalog_event(variants=[variant_with(sku="NEW-1", attributes={"MRP": "on request", "Is Active": "yes"},
                                                    warranty_months=12)], supplier="ACME")

    event = decode_event(encode(document))

    assert event.data.variants[0].attributes == {"MRP": "on request", "Is Active": "yes"}


def test_a_queued_event_an_earlier_door_took_with_a_misspelt_member_is_still_applied():
    body = encode(inventory_event(new_quantity=5, Reason="POS_SALE"))

    with pytest.raises(MessageDecodeError):
        decode_event(body)
    assert decode_event_of(body, InventoryChange).data.new_quantity == 5


@pytest.mark.parametrize(("raw", "quantity"), [(b"5.0", 5), (b"5.000", 5), (b"1E+3", 1000), (b"0.0", 0)])
def test_a_whole_number_written_with_a_fraction_is_a_quantity(raw, quantity):
    # JSON Schema's integer, which the published document names: 5.0 is one
    body = encode(inventory_event(new_quantity=123456789)).replace(b"123456789", raw, 1)

    assert decode_event(body).data.new_quantity == quantity


@pytest.mark.parametrize("raw", [b"5.5", b"1E+100000000", b"true"])
def test_a_fraction_a_vast_exponent_or_a_boolean_is_no_quantity(raw):
    body = encode(inventory_event(new_quantity=123456789)).replace(b"123456789", raw, 1)

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)

    assert [d["field"] for d in refused.value.details] == ["data.new_quantity"]


@pytest.mark.parametrize(("body", "told"), [
    (b'{"event_id": "caf\xe9"}', "it must be UTF-8, and byte 0xe9 at position 17 is not"),
    (b'{"n": ' + b"9" * 5000 + b"}", "a number has more than 4300 digits"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"event_id": ', "Expecting value: line 1 column 14 (char 13)"),
])
def test_a_body_that_is_not_json_is_told_why_in_the_senders_terms(body, told):
    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)

    assert str(refused.value) == f"body is not valid JSON: {told}"


def test_a_field_named_by_the_senders_own_long_text_is_named_shortened():
    # an attribute's name is part of the field's path: 300 characters were echoed whole
    body = encode(catalog_event(variants=[variant_with(attributes={"x" * 300: "v"})]))

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)

    [detail] = refused.value.details
    assert detail["field"] == f"data.variants.0.attributes.{'x' * 40}….[key]"


def test_a_queued_event_an_earlier_door_took_with_a_unix_time_is_still_applied():
    # queued across an upgrade: refused by the door now, it must not be parked by the worker
    body = encode(stamped_event("STAMP")).replace(b'"STAMP"', b"1796600153")

    event = decode_event_of(body, InventoryChange)

    assert event.timestamp == datetime(2026, 12, 6, 23, 35, 53, tzinfo=UTC)


def test_a_queued_event_an_earlier_door_took_with_a_media_url_refused_now_is_still_applied():
    url = "http://cdn.example:0/" + "x y" * 600
    body = encode(catalog_event(variants=[variant_with(sku="PORT-0", media=[{"url": url}])]))

    event = decode_event_of(body, CatalogUpdate)

    assert str(event.data.variants[0].media[0].url).startswith("http://cdn.example:0/x%20y")


def test_a_member_given_twice_is_named_at_the_door_and_applied_as_queued_by_an_earlier_one():
    body = encode(inventory_event(new_quantity=5)).replace(b'"new_quantity": 5', b'"new_quantity": 5, "new_quantity": 500')

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)
    queued = decode_event_of(body, InventoryChange)

    assert refused.value.details == [{"field": "(body)", "message": (
        "an object names 'new_quantity' twice, and only one of its values would be kept")}]
    assert queued.data.new_quantity == 500


def test_a_number_beyond_decimals_range_is_a_400_not_a_500():
    body = encode(inventory_event(new_quantity=123456789)).replace(b"123456789", b"1E+99999999999999999999", 1)

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)

    assert str(refused.value) == "body is not valid JSON: a number's exponent is out of range"


def test_a_variant_with_more_images_than_a_shop_shows_is_refused_at_the_door_and_applied_as_queued():
    media = [{"url": f"https://cdn.example/{n}.jpg"} for n in range(101)]
    body = encode(catalog_event(variants=[variant_with(sku="MANY-1", media=media)]))

    with pytest.raises(MessageDecodeError) as refused:
        decode_event(body)
    queued = decode_event_of(body, CatalogUpdate)

    assert refused.value.details == [{"field": "data.variants.0.media",
                                      "message": "a variant may have at most 100 images; it has 101"}]
    assert len(queued.data.variants[0].media) == 101
    assert len(decode_event(encode(catalog_event(variants=[variant_with(sku="MANY-2", media=media[:100])])))
               .data.variants[0].media) == 100
