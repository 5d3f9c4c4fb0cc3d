"""The ERP's webhook events (spec section 3) as pydantic models, and their one decoder."""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from pydantic import (
    PlainValidator,
    WithJsonSchema,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    StrictBool,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import Url, core_schema

from erp_sync.shared.decoding import JSON_ERRORS, NameRepeated, field_errors, json_problem, members_named_once
from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.misspelt_members import misspelt_members
from erp_sync.shared.fields import (
    QUEUED, FigureOrChange, Identifier, Money, NoControls, NoNul, Quantity, UtcDateTime, is_queued,
    is_unicode_text, refuse_nul,
)

MAX_ATTRIBUTE_DIGITS = 15
MAX_VARIANTS = 5_000  # a bulk load sends 1,000 a group; this bounds the work one request can cost
MAX_DESCRIPTION_CHARS = 100_000
MAX_ATTRIBUTE_CHARS = 1_000
MAX_DETAILS = 20  # an error answer lists the first problems and counts them all
# As stored, percent-encoded: a thousand of them make one media message, under the broker's 16 MiB.
MAX_MEDIA_URL_CHARS = 2_048
# A variant's images: a shop shows a few; 145,000 in one variant (5 MB) made as many rows and downloads.
MAX_MEDIA_PER_VARIANT = 100

Sku = Identifier
EventId = Identifier
GroupId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), NoControls]
LocationId = Annotated[str, StringConstraints(max_length=100), NoControls]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), NoNul]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS), NoNul]
TaxCode = Annotated[str, StringConstraints(max_length=20), NoNul]
Reason = Annotated[str, StringConstraints(max_length=255), NoNul]


def _attribute_value(value: object) -> str | int | Decimal | bool:
    """A string, number or boolean; a number is bounded before any worker converts it (int() of
    1e1000000 would hold the catalog worker for a minute)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_CHARS:
            raise ValueError(f"a text value has at most {MAX_ATTRIBUTE_CHARS} characters")
        if not is_unicode_text(value):
            # What pydantic checks of every other text field; jsonb refuses it, and the worker would park the event.
            raise ValueError("a text value must be Unicode text (no lone surrogate such as \\ud800)")
        return refuse_nul(value)
    if isinstance(value, int | Decimal):
        number = Decimal(value) if isinstance(value, int) else value
        # adjusted() and the exponent read the number's digits; arithmetic on 1e1000000 would overflow.
        # Past 15 significant digits a float (JSON's number, as stored and served) no longer holds
        # the value: 12345678901.123456 came back as 12345678901.123455.
        if not number.is_finite() or number.adjusted() >= MAX_ATTRIBUTE_DIGITS or _decimals(number) > 6 \
                or len(number.normalize().as_tuple().digits) > MAX_ATTRIBUTE_DIGITS:
            raise ValueError(f"a number has at most {MAX_ATTRIBUTE_DIGITS} significant digits, at most 6 of them "
                             "after the point")
        return value
    raise ValueError("must be a string, a number or a boolean")


def _decimals(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


# A PlainValidator hides the accepted types from pydantic's JSON Schema: the contract states them here.
AttributeValue = Annotated[str | int | Decimal | bool, PlainValidator(_attribute_value), WithJsonSchema({
    "anyOf": [
        {"type": "string", "maxLength": MAX_ATTRIBUTE_CHARS},
        {"type": "number", "exclusiveMinimum": -(10**MAX_ATTRIBUTE_DIGITS), "exclusiveMaximum": 10**MAX_ATTRIBUTE_DIGITS},
        {"type": "boolean"},
    ],
    "description": f"A string, a number (at most {MAX_ATTRIBUTE_DIGITS} significant digits, at most 6 after the "
                   "point) or a boolean; no NUL character.",
})]


# AnyHttpUrl's check (pydantic-core's URL parser, http and https only: the same answers, errors
# and normalised text) without the Python wrapper it puts around every URL, a tenth of decoding a
# catalog group, whose 1,000 variants carry 2,000 of them.
HttpUrl = Annotated[
    Url,
    GetPydanticSchema(lambda _source, _handler: core_schema.url_schema(allowed_schemes=["http", "https"])),
    WithJsonSchema({"type": "string", "format": "uri", "minLength": 1}),
]


class _Model(BaseModel):
    """Members the spec does not name are ignored (docs/erp-teams.md), but for misspellings of the
    ones it does, which the door refuses (shared/misspelt_members.py)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Media(_Model):
    url: HttpUrl
    is_main: StrictBool = False

    @field_validator("url")
    @classmethod
    def _public(cls, url: Url, info: ValidationInfo) -> Url:
        # The storefront shows the URL as it is: a password in it would be published with it.
        if url.username is not None or url.password is not None:
            raise ValueError("a media URL must be public: no user name or password in it")
        if is_queued(info):
            return url
        if url.port == 0:
            raise ValueError("a media URL's port must be 1 to 65535")
        if len(str(url)) > MAX_MEDIA_URL_CHARS:
            raise ValueError(f"a media URL may have at most {MAX_MEDIA_URL_CHARS:,} characters, percent-encoded")
        return url


class Variant(_Model):
    sku: Sku
    display_name: Name
    price: Money
    mrp: Money | None = None
    stock_quantity: Quantity | None = None
    attributes: dict[Name, AttributeValue] = Field(default_factory=dict, max_length=200)
    media: list[Media] = Field(min_length=1, json_schema_extra={"maxItems": MAX_MEDIA_PER_VARIANT})

    @field_validator("media")
    @classmethod
    def _few_enough_images(cls, media: list[Media], info: ValidationInfo) -> list[Media]:
        if len(media) > MAX_MEDIA_PER_VARIANT and not is_queued(info):
            raise ValueError(f"a variant may have at most {MAX_MEDIA_PER_VARIANT} images; it has {len(media):,}")
        return media

    @field_validator("attributes", mode="before")
    @classmethod
    def _distinct_names(cls, attributes: object) -> object:
        # Names are stripped: "Color" and " Color " would become one, the first value lost unsaid.
        if isinstance(attributes, dict):
            seen: set[str] = set()
            for name in attributes:
                stripped = name.strip() if isinstance(name, str) else name
                if stripped in seen:
                    raise ValueError(f"attribute {stripped!r:.100} appears more than once (names are compared "
                                     "without their surrounding spaces)")
                seen.add(stripped)
        return attributes


class CatalogData(_Model):
    product_group_id: GroupId
    group_name: Name
    description: Description = ""
    category_hierarchy: list[Name] = Field(default_factory=list, max_length=20)
    tax_hsn: TaxCode | None = None
    is_active: StrictBool = True
    variants: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)

    @field_validator("variants")
    @classmethod
    def _unique_skus(cls, variants: list[Variant]) -> list[Variant]:
        seen: set[str] = set()
        for variant in variants:
            if variant.sku in seen:
                raise ValueError(f"sku {variant.sku!r} appears more than once in this event")
            seen.add(variant.sku)
        return variants


class InventoryData(_Model, FigureOrChange):
    sku: Sku
    location_id: LocationId | None = None
    reason: Reason | None = None
    # Optional extension (docs/erp-teams.md): the order this change deducts, when the ERP names it.
    reference_id: Identifier | None = None


class _Envelope(_Model):
    event_id: EventId
    timestamp: UtcDateTime


class CatalogUpdate(_Envelope):
    event_type: Literal["catalog.update"]
    data: CatalogData


class InventoryChange(_Envelope):
    event_type: Literal["inventory.change"]
    data: InventoryData


ErpEvent = CatalogUpdate | InventoryChange
EVENT_MODELS: dict[str, type[CatalogUpdate] | type[InventoryChange]] = {
    "catalog.update": CatalogUpdate,
    "inventory.change": InventoryChange,
}


def decode_event(raw: bytes, *, queued: bool = False) -> ErpEvent:
    """Decode one webhook body; JSON numbers become Decimal, never float.

    `queued`: a worker's reading of a body a door accepted, perhaps of an earlier release (fields.QUEUED).

    Raises:
        MessageDecodeError: with `details` naming every bad field, and the raw bytes kept.
    """
    try:
        # A repeated member is refused at the door; a body queued by an earlier door is applied as it took it.
        document = json.loads(raw, parse_float=Decimal, object_pairs_hook=None if queued else members_named_once)
    except NameRepeated as exc:
        raise MessageDecodeError(f"body is ambiguous: {exc}", raw=raw,
                                 details=[{"field": "(body)", "message": str(exc)}]) from exc
    except JSON_ERRORS as exc:
        raise MessageDecodeError(f"body is not valid JSON: {json_problem(exc)}", raw=raw,
                                 details=[{"field": "(body)", "message": "invalid JSON"}]) from exc
    if not isinstance(document, dict):
        raise MessageDecodeError("body is not a JSON object", raw=raw,
                                 details=[{"field": "(body)", "message": "expected a JSON object"}])
    event_type = document.get("event_type")
    model = EVENT_MODELS.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        expected = ", ".join(sorted(EVENT_MODELS))
        raise MessageDecodeError(f"unknown event_type {event_type!r:.100}", raw=raw, details=[
            {"field": "event_type", "message": f"unknown event type {event_type!r:.100}; expected one of {expected}"}
        ])
    if not queued and (misspelt := misspelt_members(document, model, MAX_DETAILS)):
        raise MessageDecodeError(f"invalid {event_type} event: {len(misspelt)} misspelt member(s)", raw=raw,
                                 details=misspelt)
    try:
        return model.model_validate(document, context=QUEUED if queued else None)
    except ValidationError as exc:
        count = exc.error_count()
        listed = f", the first {MAX_DETAILS} listed" if count > MAX_DETAILS else ""
        raise MessageDecodeError(f"invalid {event_type} event: {count} problem(s){listed}", raw=raw,
                                 details=field_errors(exc, MAX_DETAILS)) from exc


EventT = TypeVar("EventT", CatalogUpdate, InventoryChange)


def decode_event_of(raw: bytes, model: type[EventT]) -> EventT:
    """Decode a queued body that must be an event of `model`'s type (a worker's own queue)."""
    event = decode_event(raw, queued=True)
    if not isinstance(event, model):
        expected = model.model_fields["event_type"].annotation.__args__[0]  # type: ignore[union-attr]
        raise MessageDecodeError(f"expected event type {expected}, got {event.event_type}", raw=raw)
    return event


def event_age_problem(event: ErpEvent, now: datetime, max_age_s: int, max_future_s: int) -> str | None:
    """Why an event's timestamp is outside the accepted window, or None when it is inside."""
    age = (now - event.timestamp).total_seconds()
    if age > max_age_s:
        return f"event is older than the accepted maximum age of {max_age_s} s"
    if -age > max_future_s:
        return f"event is dated more than {max_future_s} s in the future"
    return None
