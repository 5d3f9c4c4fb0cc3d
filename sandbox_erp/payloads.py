"""Request bodies the sandbox accepts (spec 4 and its admin API), validated with pydantic."""
from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError, field_validator

from erp_sync.sandbox_erp.errors import ApiError
from erp_sync.shared.fields import FigureOrChange, Money

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LineItem(_Body):
    sku: Text
    quantity: Annotated[StrictInt, Field(gt=0)]
    unit_price: Money | None = None


class OrderImport(_Body):
    """Option A."""

    order_id: Text
    order_date: str | None = None
    customer_ref: str | None = None
    line_items: list[LineItem] = Field(min_length=1)
    warehouse_id: str | None = None


class Adjustment(_Body):
    sku: Text
    quantity_change: StrictInt
    warehouse_id: str | None = None


class InventoryAdjust(_Body):
    """Option B."""

    reference_id: Text
    adjustments: list[Adjustment] = Field(min_length=1)


class StockMove(_Body):
    """Admin: an in-store sale or a goods receipt."""

    sku: Text
    quantity: Annotated[StrictInt, Field(gt=0)] = 1
    location_id: str | None = "WH-MAIN"


class StockSet(_Body, FigureOrChange):
    """Admin: a stock adjustment, absolute or relative."""

    sku: Text
    location_id: str | None = "WH-MAIN"


class PriceChange(_Body):
    sku: Text
    price: Money
    mrp: Money | None = None


class Faults(_Body):
    mode: Annotated[str, StringConstraints(pattern="^(none|down|5xx|slow|lost)$")] = "none"
    status: Annotated[int, Field(ge=429, le=599)] = 503
    retry_after_s: Annotated[int, Field(ge=0, le=86_400)] | None = None
    delay_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    reject_skus: list[str] = Field(default_factory=list)
    slow_skus: list[str] = Field(default_factory=list)

    @field_validator("status")
    @classmethod
    def _busy_or_down(cls, status: int) -> int:
        if status != 429 and status < 500:
            raise ValueError("a 5xx, or 429 (too many requests)")
        return status


Model = TypeVar("Model", bound=BaseModel)


def parse(model: type[Model], body: Any) -> Model:
    """Validate a decoded body, or raise a 400 naming every bad field."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        raise ApiError(400, "invalid body", details) from exc
