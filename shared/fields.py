"""Field types bounded by what their columns hold, so whatever a validator accepts a worker can store.

PostgreSQL refuses NUL in any text; an identifier (a SKU, an event or order id) holds no control
character at all, since it also appears in logs, URLs and queue headers.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from erp_sync.shared.decoding import JSON_ERRORS

IDENTIFIER_LENGTH = 100  # SKUs, event ids, order ids, locations, warehouses
# An event or order id is also its message's AMQP message-id, a short string of at most 255 bytes:
# 100 characters of Chinese are 300 in UTF-8, and the door answered 503 to a body it had validated.
IDENTIFIER_BYTES = 255
MAX_QUANTITY = 1_000_000_000  # one figure or difference; order lines and holds keep it in 32 bits


# Unicode's category Cc is exactly these 65 code points; one regex scan instead of a lookup per character
# (a fifth of the decoding of a 1,000-variant catalog group).
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control_characters(value: str) -> bool:
    return _CONTROL_CHARACTER.search(value) is not None


# Unicode's categories Cf (format: zero-width spaces and joiners, direction overrides, the byte
# order mark, tags) and Zl, Zp (line and paragraph separators), as of Unicode 15.0 (Python 3.12;
# 3.11's 14.0 has U+13439-1343F unassigned): in an id they make two that look alike differ ("SKU-1"
# and "SKU-1\u200b"), or one read backwards in a log. A unit test holds this to unicodedata.
_INVISIBLE_CHARACTER = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")


def refuse_invisible_characters(value: str, info: ValidationInfo) -> str:
    # A message queued by an earlier release, which let these through, is still applied.
    if _INVISIBLE_CHARACTER.search(value) is not None and not is_queued(info):
        raise ValueError("must not contain invisible format characters (such as a zero-width space, a "
                         "direction mark or a line separator)")
    return value


def is_storable_identifier(value: str) -> bool:
    """True for a non-empty id that fits its column and a message id, and holds no control character."""
    return (0 < len(value) <= IDENTIFIER_LENGTH and _utf8_length(value) <= IDENTIFIER_BYTES
            and not has_control_characters(value))


def is_unicode_text(value: str) -> bool:
    """False for a string with a lone surrogate (JSON's "\\ud800"): no UTF-8, so no PostgreSQL text, holds it."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


# RabbitMQ 4's largest message: no body erp-sync takes is larger. A larger one (RabbitMQ 3 takes
# 128 MiB) is not read for its id: parsed, a 52 MB order took 240 MB, each time it was named.
NAMED_ID_MAX_BYTES = 16 * 2**20


def id_named_in(body: bytes, keys: tuple[str, ...] = ("event_id", "order_id")) -> str | None:
    """The event or order id a JSON body names under the first of `keys` it has, when it is a usable one.

    None for a body over NAMED_ID_MAX_BYTES, which is not parsed.
    """
    if len(body) > NAMED_ID_MAX_BYTES:
        return None
    try:
        data = json.loads(body)
    except JSON_ERRORS:
        return None
    if not isinstance(data, dict):
        return None
    named = next((data[key] for key in keys if key in data), None)
    if isinstance(named, str) and is_storable_identifier(named.strip()):
        return named.strip()
    return None


def _utf8_length(value: str) -> int:
    """Its length in UTF-8; beyond any bound for a lone surrogate (JSON's "\\ud800"), which has none."""
    try:
        return len(value.encode())
    except UnicodeEncodeError:
        return IDENTIFIER_BYTES + 1


def refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def refuse_control_characters(value: str) -> str:
    if has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value


def refuse_long_encodings(value: str) -> str:
    if _utf8_length(value) > IDENTIFIER_BYTES:
        raise ValueError(f"must be at most {IDENTIFIER_BYTES} bytes in UTF-8")
    return value


NoNul = AfterValidator(refuse_nul)
NoControls = AfterValidator(refuse_control_characters)
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=IDENTIFIER_LENGTH), NoControls,
    AfterValidator(refuse_long_encodings), AfterValidator(refuse_invisible_characters),
]
CENT = Decimal("0.01")


def to_cents(value: Decimal) -> Decimal:
    """The amount with exactly two decimals.

    A zero passes `decimal_places` with any exponent, and PostgreSQL refuses the text of
    0E-16384 and beyond ("value overflows numeric format"): the worker would park what was accepted.
    A negative zero (a float's `round(-0.004, 2)`) is zero: "-0.00" would reach the ERP as a
    negative price.
    """
    cents = value.quantize(CENT)
    return cents.copy_abs() if cents.is_zero() else cents


_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def plain_decimal_text(value: object) -> object:
    """A price given as text must be written as in JSON: Python's Decimal() also reads "1_000",
    " 7 " and other scripts' digits ("١٢٣"), which no ERP means as a price.

    Places are checked before digits: pydantic checks digits first, and a float's rounding residue
    (0.1 + 0.2 is 0.30000000000000004, a JSON number of 17 digits) was refused as "no more than 12
    digits in total", which hides what to fix.
    """
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        raise ValueError(f"a price given as text is digits with an optional decimal point, such as \"79900.00\"; "
                         f"got {value!r:.40}")
    if isinstance(value, (float, str, Decimal)) and _too_many_places(value):
        raise PydanticCustomError("decimal_max_places",
                                  "Decimal input should have no more than {decimal_places} decimal places",
                                  {"decimal_places": PRICE_PLACES})
    return value


def _too_many_places(value: float | str | Decimal) -> bool:
    """Whether a finite number has more than PRICE_PLACES decimal places, trailing zeros not counted."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        # Not as_tuple(): three times the cost, paid twice a variant of a 5,000-variant event.
        return number.is_finite() and number.quantize(CENT) != number
    except ArithmeticError:
        return False  # not a number, or too large to quantize: pydantic names what is wrong


# Prices of the catalog (numeric(12,2)) and of order lines.
PRICE_PLACES = 2
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=PRICE_PLACES, allow_inf_nan=False),
                  BeforeValidator(plain_decimal_text), AfterValidator(to_cents), WithJsonSchema({"anyOf": [
                      {"type": "number", "minimum": 0},
                      {"type": "string", "pattern": f"^{_PLAIN_DECIMAL.pattern}$"},
                  ]})]


def whole_number(value: object) -> object:
    """A number written with a zero fraction (`5.0`) as the integer it is, as JSON Schema's `integer` counts it.

    Only up to 19 digits: int() of `1E+100000000` would build a hundred-million-digit integer.
    """
    if isinstance(value, Decimal) and value.is_finite() and value.adjusted() < 19 and value == value.to_integral_value():
        return int(value)
    return value


WholeNumber = BeforeValidator(whole_number)
Quantity = Annotated[StrictInt, Field(ge=0, le=MAX_QUANTITY), WholeNumber]
PositiveQuantity = Annotated[StrictInt, Field(gt=0, le=MAX_QUANTITY), WholeNumber]
QuantityChange = Annotated[StrictInt, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY), WholeNumber]


class FigureOrChange(BaseModel):
    """A stock statement of spec 3.2: a new total (`new_quantity`) or a difference (`quantity_change`), exactly one."""

    new_quantity: Quantity | None = None
    quantity_change: QuantityChange | None = None

    @model_validator(mode="after")
    def _absolute_or_delta(self) -> Self:
        if (self.new_quantity is None) == (self.quantity_change is None):
            raise ValueError("exactly one of new_quantity and quantity_change is required")
        return self


# An offset of hours alone ("+05") is ISO 8601's too, but pydantic cannot read it.
_ISO_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?"
                            r"([Zz]|[+-][0-9]{2}:?[0-9]{2})")
# A leap second (23:59:60), which the ERP's clock may show; pydantic, like Python, has no such second.
_LEAP_SECOND = re.compile(r"(?<=[0-9]{2}:[0-9]{2}:)60(?=[.,Zz+-]|$)")
# The context a worker validates a queued body in: a message may wait on a queue across an upgrade,
# so what an earlier release accepted is applied, not judged again by a rule added at the edges since.
QUEUED: dict[str, bool] = {"queued": True}


def is_queued(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("queued"))


def iso_date_time_text(value: object, info: ValidationInfo) -> object:
    """A date and time given as ISO 8601 text with its time zone; pydantic would also read a number,
    or a string of digits, as Unix time: "20261206234235" (a compact local time) became the year 2612.
    """
    if isinstance(value, str) and _ISO_DATE_TIME.fullmatch(value):
        return _leap_second_as_59(value, strict=not is_queued(info)) if ":60" in value else value
    if isinstance(value, datetime) or is_queued(info):
        return value
    raise PydanticCustomError("iso_date_time", "expected an ISO 8601 date and time with a time zone, such as "
                                               "\"2024-01-20T10:00:00Z\" or \"2024-01-20T15:30:00+05:30\"")


def _leap_second_as_59(value: str, *, strict: bool) -> str:
    """A leap second read as the second before it; `strict` (not queued: an earlier door took any), a
    second of 60 anywhere but 23:59 UTC is refused."""
    rewritten = _LEAP_SECOND.sub("59", value, count=1)
    if rewritten == value or not strict:
        return rewritten  # ":60" elsewhere (minutes): pydantic says what is wrong
    try:
        instant = datetime.fromisoformat(rewritten.upper().replace(" ", "T"))
    except ValueError:
        return rewritten  # unreadable either way: pydantic says why
    if instant.tzinfo is None or (instant.astimezone(UTC).hour, instant.astimezone(UTC).minute) != (23, 59):
        raise PydanticCustomError("leap_second", "a second of 60 is a leap second, which comes only at 23:59:60 UTC")
    return rewritten


ZonedDateTime = Annotated[AwareDatetime, BeforeValidator(iso_date_time_text)]


def in_utc(value: datetime) -> datetime:
    """The same instant in UTC, which PostgreSQL reads however it is sent (as text it refuses an
    offset beyond ±15:59, which ISO 8601 allows), and which compares with another without asking
    either's time zone for its offset: a third of the workers' date check."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be an instant between the years 1 and 9999 in UTC") from None


# An ERP event's timestamp: only its instant counts.
UtcDateTime = Annotated[ZonedDateTime, AfterValidator(in_utc)]
