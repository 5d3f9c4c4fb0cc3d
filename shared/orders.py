"""The `order.placed` message: its schema, its decoding, and how the storefront publishes it."""
from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import ijson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)

from erp_sync.shared.decoding import JSON_ERRORS, field_errors, json_problem
from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.misspelt_members import misspelt_members
from erp_sync.shared.fields import (
    QUEUED, Identifier, Money, NoNul, PositiveQuantity, ZonedDateTime, id_named_in, is_queued,
    is_storable_identifier,
)
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import ORDER_PLACED, ORDERS_EXCHANGE

logger = logging.getLogger(__name__)
MAX_PROBLEMS = 20  # misspelt members named in one refusal
# The most lines an order may have, and the most bytes its body may take: a storefront's runaway
# order (1,000,000 lines, 52 MB) took the orders worker 50 s and 1.6 GB to record, every order
# behind it waiting, and under a pod's 512 MiB it was killed at each delivery until the broker
# parked it with every order prefetched beside it. A larger body is refused unread: reading it is
# what costs the memory. The largest order `publish_order` writes (1,000 lines of 100-character
# SKUs beyond ASCII, escaped) takes 0.8 MB; one with ASCII SKUs under 0.2 MB.
MAX_ORDER_LINES = 1_000
MAX_ORDER_BYTES = 2**20

CONTENT_TYPE = "application/json"
T = TypeVar("T")


# A day inside Python's range at each end: a database session in any time zone reads the date back.
EARLIEST_ORDER_DATE = datetime(1, 1, 2, tzinfo=UTC)
LATEST_ORDER_DATE = datetime(9999, 12, 30, tzinfo=UTC)


def refuse_unreadable_dates(value: datetime) -> datetime:
    """The date as given, if a database session in any time zone can read it back.

    PostgreSQL stores 0001-01-01T00:00:00+01:00 (in 1 BC) and 9999-12-31T23:59:59-01:00, but reads
    them back into no Python datetime: such an order could be recorded, never pushed nor shown.
    """
    try:
        readable = EARLIEST_ORDER_DATE <= value.astimezone(UTC) <= LATEST_ORDER_DATE
    except OverflowError:
        readable = False
    if not readable:
        raise ValueError(f"must fall between {EARLIEST_ORDER_DATE.date()} and {LATEST_ORDER_DATE.date()} in UTC")
    return value


OrderDate = Annotated[ZonedDateTime, AfterValidator(refuse_unreadable_dates)]
_HEADER_TEXT = re.compile(r"[\x20-\x7e]+")


def is_header_text(value: str) -> bool:
    """Whether `value` is printable ASCII, what every HTTP header reads alike (RFC 9110, less its obsolete bytes)."""
    return _HEADER_TEXT.fullmatch(value) is not None


def fits_a_header(value: str) -> bool:
    """Whether the ERP client can send `value` as a header at all: Latin-1, as http.client encodes headers."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def refuse_non_header_text(order_id: str, info: ValidationInfo) -> str:
    if not is_header_text(order_id) and not is_queued(info):
        raise ValueError("must be printable ASCII (letters, digits, punctuation, spaces): it goes to the ERP as "
                         "the Idempotency-Key header")
    return order_id


OrderId = Annotated[Identifier, AfterValidator(refuse_non_header_text)]
CustomerRef = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), NoNul]
_ORDER_DATE: TypeAdapter[datetime] = TypeAdapter(OrderDate)
_CUSTOMER_REF: TypeAdapter[str] = TypeAdapter(CustomerRef)


class LineItem(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: Identifier
    quantity: PositiveQuantity
    unit_price: Money


def refuse_too_many_lines(lines: object) -> object:
    """The lines as given, if they are at most MAX_ORDER_LINES: counted before any is read."""
    if isinstance(lines, list) and len(lines) > MAX_ORDER_LINES:
        raise ValueError(f"at most {MAX_ORDER_LINES:,} lines an order, not {len(lines):,}: place it as several orders, "
                         "each under a new order id")
    return lines


OrderLines = Annotated[list[LineItem], Field(min_length=1), BeforeValidator(refuse_too_many_lines)]


class OrderPlaced(BaseModel):
    """An order placed on the storefront (the spec's Option A order plus an optional warehouse)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    order_id: OrderId
    order_date: OrderDate
    customer_ref: CustomerRef = ""
    line_items: OrderLines
    warehouse_id: Identifier | None = None

    def same_order(self, other: OrderPlaced) -> bool:
        """True when `other` places the same order: the same date, customer, warehouse and lines in the same order."""
        return (self.order_id, self.order_date, self.customer_ref, self.warehouse_id, self._lines()) == \
            (other.order_id, other.order_date, other.customer_ref, other.warehouse_id, other._lines())

    def _lines(self) -> list[tuple[str, int, Decimal]]:
        # Prices compare as numbers: 899 and 899.00 (as stored) are the same price.
        return [(line.sku, line.quantity, line.unit_price) for line in self.line_items]

    def to_json(self) -> bytes:
        """The body as sent on RabbitMQ and to the ERP: prices as JSON numbers with 2 decimals (`Money`)."""
        return dumps(self.as_option_a() | ({"warehouse_id": self.warehouse_id} if self.warehouse_id else {}))

    def as_option_a(self) -> dict[str, Any]:
        """The spec 4 Option A body, with Decimal prices (see `dumps`)."""
        return {
            "order_id": self.order_id,
            "order_date": self.order_date.isoformat().replace("+00:00", "Z"),
            "customer_ref": self.customer_ref,
            "line_items": [
                {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
                for line in self.line_items
            ],
        }


# A Decimal travels through json.dumps as this marked string and comes out as a bare number:
# the json module has no way to print a Decimal as a number, and a float would lose digits.
_DECIMAL_MARK = "\u0000decimal:"
_MARKED = re.compile(r'"\\u0000decimal:(-?[0-9]+(?:\.[0-9]+)?)"')


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{_DECIMAL_MARK}{value:f}"
    if isinstance(value, datetime):
        return value.isoformat()  # a storefront's order_date; one without a zone is refused as such
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_exact(item) for item in value]
    return value


def dumps(value: Any) -> bytes:
    """JSON with every Decimal written as a number with its exact digits (never a string, never a float)."""
    return _MARKED.sub(r"\1", json.dumps(_exact(value), separators=(",", ":"))).encode()


def decode_order(raw: bytes, *, queued: bool = False) -> OrderPlaced:
    """Parse and validate an order body; prices are read as exact decimals.

    `queued`: the orders worker's reading of a queued order, which an earlier release's
    `publish_order` may have accepted (fields.QUEUED).

    Raises:
        MessageDecodeError: over MAX_ORDER_BYTES, not JSON, or not a valid order; keeps the raw
            bytes and each problem.
    """
    if len(raw) > MAX_ORDER_BYTES:
        raise MessageDecodeError(too_large(raw), raw=raw)
    try:
        data = json.loads(raw, parse_float=Decimal)
    except JSON_ERRORS as exc:
        raise MessageDecodeError(f"order body is not JSON: {json_problem(exc)}", raw=raw) from exc
    if not isinstance(data, dict):
        raise MessageDecodeError("order body is not a JSON object", raw=raw)
    if misspelt := misspelt_members(data, OrderPlaced, MAX_PROBLEMS, key="problem"):
        summary = "; ".join(f"{d['field']}: {d['problem']}" for d in misspelt)
        if not queued:
            raise MessageDecodeError(f"invalid order: {summary}", raw=raw, details=misspelt)
        # Published by other means than `publish_order`: the order goes on, with the field's default.
        logger.warning("order %s: %s (the field's default is used)", order_id_of(raw), summary)
    try:
        return OrderPlaced.model_validate(data, context=QUEUED if queued else None)
    except ValidationError as exc:
        details = field_errors(exc, exc.error_count(), key="problem")
        summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
        raise MessageDecodeError(f"invalid order: {summary}", raw=raw, details=details) from exc


def too_large(raw: bytes) -> str:
    """Why a body over MAX_ORDER_BYTES is refused unread."""
    return (f"order body of {len(raw):,} bytes, over the {MAX_ORDER_BYTES:,} an order may take "
            f"(at most {MAX_ORDER_LINES:,} lines): not read; place it as several orders, each under a new order id")


def order_id_of(raw: bytes, message_id: str | None = None) -> str | None:
    """The order id of a body that failed to decode, when it names a usable one.

    A body over MAX_ORDER_BYTES is not parsed whole: its order id is the message's id (as `publish_order`
    sets it) when the body's own `order_id` member (streamed up to it) is that id, else none.
    """
    if len(raw) <= MAX_ORDER_BYTES:
        return id_named_in(raw, ("order_id",))
    if not message_id or message_id != message_id.strip() or not is_storable_identifier(message_id):
        return None
    return message_id if _top_level_order_id(raw) == message_id else None


def _top_level_order_id(raw: bytes) -> object:
    """The body's own `order_id` member, streamed: nothing but it is kept, and it is read as JSON reads it.

    Not a search of the bytes: that found `"order_id": "X"` inside a line or another object, and so
    recorded order X rejected for another order's body, and missed an id written with escapes.
    """
    try:
        return next(ijson.items(io.BytesIO(raw), "order_id"), None)
    except (ijson.JSONError, ValueError):  # cut or broken before its order_id
        return None


def readable_parts(raw: bytes) -> tuple[datetime | None, str]:
    """The date and customer of an order body that failed to decode, each where it is valid alone (else None, "").

    None and "" for a body over MAX_ORDER_BYTES, which is not parsed.
    """
    if len(raw) > MAX_ORDER_BYTES:
        return None, ""
    try:
        data = json.loads(raw, parse_float=Decimal)
    except JSON_ERRORS:
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    return _valid(_ORDER_DATE, data.get("order_date")), _valid(_CUSTOMER_REF, data.get("customer_ref")) or ""


def _valid(adapter: TypeAdapter[T], value: object) -> T | None:
    try:
        return adapter.validate_python(value, context=QUEUED)
    except ValidationError:
        return None


def order_message(order: OrderPlaced, exchange: str = ORDERS_EXCHANGE, routing_key: str = ORDER_PLACED,
                  headers: dict[str, Any] | None = None) -> OutgoingMessage:
    """The order as a persistent JSON message whose message id is the order id."""
    return OutgoingMessage(exchange, routing_key, order.to_json(), order.order_id, CONTENT_TYPE, headers or {})


def publish_order(publisher: ConfirmingPublisher, order: OrderPlaced | dict[str, Any]) -> None:
    """Publish a placed order for erp-sync: validated, persistent, JSON, confirmed by RabbitMQ.

    Raises:
        MessageDecodeError: the order is not valid (nothing was published).
        BrokerUnavailable: RabbitMQ did not confirm in time; publish again, the order id dedupes.
        QueueFull: erp-sync.orders is at its bound (QUEUE_MAX_LENGTH, QUEUE_MAX_BYTES: the orders
            worker is down or far behind); nothing was queued: publish again later, as for
            BrokerUnavailable.
        PublishRejected: otherwise, no queue is bound (run `erp-sync migrate`).
    """
    if not isinstance(order, OrderPlaced):
        # Lines counted before the body is written: past about 20,000 the body is over MAX_ORDER_BYTES,
        # refused for its size alone with no field named, where the storefront is told line_items.
        try:
            refuse_too_many_lines(order.get("line_items") if isinstance(order, dict) else None)
        except ValueError as exc:
            problem: list[dict[str, object]] = [{"field": "line_items", "problem": str(exc)}]
            raise MessageDecodeError(f"invalid order: line_items: {exc}", raw=b"", details=problem) from exc
        order = decode_order(dumps(order))
    publisher.publish(order_message(order))
