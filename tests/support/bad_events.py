"""ERP events that must be refused, each with the fields a refusal names (the webhook contract's table)."""
from __future__ import annotations

from datetime import timedelta

from tests.support.factories import catalog_event, encode, inventory_event, now_iso, variant_with


def _catalog_variant(**overrides):
    return catalog_event(variants=[variant_with(**overrides)])


BAD_EVENTS = [
    ("invalid-json", b'{"event_id": "evt_1", ', ["(body)"]),
    ("array", b"[1, 2]", ["(body)"]),
    # each of which a parser reads as one value or the other
    ("a-quantity-given-twice", encode(inventory_event(new_quantity=5)).replace(b'"new_quantity": 5',
                                                                              b'"new_quantity": 5, "new_quantity": 500'),
     ["(body)"]),
    ("an-attribute-given-twice", encode(_catalog_variant(attributes={"Color": "Black"})).replace(
        b'"Color": "Black"', b'"Color": "Black", "Color": "Blue"'), ["(body)"]),
    ("unknown-event-type", encode({**inventory_event(), "event_type": "stock.teleported"}), ["event_type"]),
    ("missing-event-id", encode({k: v for k, v in inventory_event().items() if k != "event_id"}), ["event_id"]),
    ("naive-timestamp", encode({**inventory_event(), "timestamp": "2024-01-20T10:05:00"}), ["timestamp"]),
    ("too-old", encode({**inventory_event(), "timestamp": now_iso(-timedelta(hours=49))}), ["timestamp"]),
    ("from-the-future", encode({**inventory_event(), "timestamp": now_iso(timedelta(hours=1))}), ["timestamp"]),
    ("missing-sku", encode(inventory_event(sku=None)), ["data.sku"]),
    ("blank-sku", encode(inventory_event(sku="  ")), ["data.sku"]),
    ("absolute-and-delta", encode(inventory_event(quantity_change=-1)), ["data"]),
    ("neither-absolute-nor-delta", encode(inventory_event(new_quantity=None)), ["data"]),
    ("quantity-as-string", encode(inventory_event(new_quantity="49")), ["data.new_quantity"]),
    ("fractional-quantity", encode(inventory_event(new_quantity=49.5)), ["data.new_quantity"]),
    ("negative-stock", encode(inventory_event(new_quantity=-3)), ["data.new_quantity"]),
    ("long-group-id", encode(catalog_event(product_group_id="P" * 51)), ["data.product_group_id"]),
    ("no-variants", encode(catalog_event(variants=[])), ["data.variants"]),
    ("price-3-places", encode(_catalog_variant(price=10.125)), ["data.variants.0.price"]),
    ("price-as-bool", encode(_catalog_variant(price=True)), ["data.variants.0.price"]),
    ("negative-mrp", encode(_catalog_variant(mrp=-1)), ["data.variants.0.mrp"]),
    ("no-media", encode(_catalog_variant(media=[])), ["data.variants.0.media"]),
    ("ftp-media", encode(_catalog_variant(media=[{"url": "ftp://erp/x.jpg"}])), ["data.variants.0.media.0.url"]),
    ("duplicate-sku", encode(catalog_event(variants=[variant_with(), variant_with()])), ["data.variants"]),
    (
        "several-bad-fields",
        encode(catalog_event(group_name="", variants=[variant_with(price="cheap", stock_quantity=1.5)])),
        ["data.group_name", "data.variants.0.price", "data.variants.0.stock_quantity"],
    ),
]


def _with_raw_number(event: dict, placeholder: int, raw_number: bytes) -> bytes:
    """The event's JSON with one number spelled as given (JSON numbers json.dumps cannot write)."""
    return encode(event).replace(str(placeholder).encode(), raw_number, 1)


# Values storage could not hold, and bodies that would cost the door unbounded work: each must be a
# prompt 400 naming the field, never a 202 the workers then park, nor a 500 the ERP retries for a day.
HOSTILE_EVENTS = [
    ("stock-over-int32", encode(inventory_event(new_quantity=2**31)), ["data.new_quantity"]),
    ("delta-far-below-int32", encode(inventory_event(new_quantity=None, quantity_change=-(2**40))),
     ["data.quantity_change"]),
    ("variant-stock-over-int32", encode(_catalog_variant(stock_quantity=2**31)), ["data.variants.0.stock_quantity"]),
    ("nul-in-sku", encode(inventory_event(sku="SKU\x00X")), ["data.sku"]),
    ("newline-in-event-id", encode({**inventory_event(), "event_id": "evt_1\nALERT forged"}), ["event_id"]),
    # 88 characters, 264 bytes in UTF-8: past an AMQP message id, which answered 503 for ever.
    ("event-id-beyond-255-bytes", encode({**inventory_event(), "event_id": "库存变更" * 22}), ["event_id"]),
    ("nul-in-description", encode(catalog_event(description="<p>\x00</p>")), ["data.description"]),
    ("price-text-with-an-underscore", encode(_catalog_variant(price="1_000.00")), ["data.variants.0.price"]),
    ("price-text-in-other-digits", encode(_catalog_variant(price="\u0661\u0662\u0663.\u0664\u0665")),
     ["data.variants.0.price"]),
    ("price-text-padded", encode(_catalog_variant(price="  7 ")), ["data.variants.0.price"]),
    ("attribute-names-alike-but-for-spaces", encode(_catalog_variant(attributes={"Color": "Black", " Color ": "Blue"})),
     ["data.variants.0.attributes"]),
    ("media-url-with-a-password", encode(_catalog_variant(media=[{"url": "https://user:secret@cdn.example/a.jpg"}])),
     ["data.variants.0.media.0.url"]),
    ("media-url-on-port-0", encode(_catalog_variant(media=[{"url": "http://cdn.example:0/a.jpg"}])),
     ["data.variants.0.media.0.url"]),
    # 1,820 characters as sent, 3,020 percent-encoded as stored
    ("media-url-too-long", encode(_catalog_variant(media=[{"url": "https://cdn.example/" + "x y" * 600}])),
     ["data.variants.0.media.0.url"]),
    ("nul-in-attribute-key", encode(_catalog_variant(attributes={"Col\x00or": "Black"})),
     ["data.variants.0.attributes.Col\x00or.[key]"]),
    # jsonb refuses a lone surrogate; JSON spells it \ud800, or a body carries its bytes ED A0 80 (json.loads takes them)
    ("surrogate-in-attribute-value", encode(_catalog_variant(attributes={"Color": "\ud800"})),
     ["data.variants.0.attributes.Color"]),
    ("surrogate-bytes-in-attribute-value", encode(_catalog_variant(attributes={"Color": "BLK"})).replace(
        b'"BLK"', b'"\xed\xa0\x80"'), ["data.variants.0.attributes.Color"]),
    ("long-group-name", encode(catalog_event(group_name="G" * 256)), ["data.group_name"]),
    ("long-display-name", encode(_catalog_variant(display_name="D" * 256)), ["data.variants.0.display_name"]),
    ("long-category", encode(catalog_event(category_hierarchy=["C" * 256])), ["data.category_hierarchy.0"]),
    ("long-tax-hsn", encode(catalog_event(tax_hsn="8" * 21)), ["data.tax_hsn"]),
    ("long-location", encode(inventory_event(location_id="L" * 101)), ["data.location_id"]),
    ("long-reason", encode(inventory_event(reason="R" * 256)), ["data.reason"]),
    ("long-reference-id", encode(inventory_event(reference_id="O" * 101)), ["data.reference_id"]),
    ("reference-id-as-number", encode(inventory_event(reference_id=1001)), ["data.reference_id"]),
    ("newline-in-reference-id", encode(inventory_event(reference_id="ORD-1\nALERT")), ["data.reference_id"]),
    ("huge-attribute-number", _with_raw_number(_catalog_variant(attributes={"Weight": 123456789}), 123456789,
                                               b"1e1000000"), ["data.variants.0.attributes.Weight"]),
    ("attribute-number-of-many-decimals", _with_raw_number(_catalog_variant(attributes={"W": 123456789}), 123456789,
                                                           b"1e-1000000"), ["data.variants.0.attributes.W"]),
    ("deep-nesting", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, ["(body)"]),
    ("integer-of-5000-digits", _with_raw_number(inventory_event(new_quantity=123456789), 123456789, b"9" * 5000),
     ["(body)"]),
    ("too-many-variants", encode(catalog_event(variants=[{}] * 250_000)), ["data.variants"]),
]
BAD_EVENTS += HOSTILE_EVENTS

# Refused by the ingress's window on timestamps (shared.erp_events.event_age_problem), not by the decoder.
OUT_OF_WINDOW = {"too-old", "from-the-future"}
