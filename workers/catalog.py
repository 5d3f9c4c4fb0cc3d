"""The catalog worker: applies `catalog.update` (spec 3.1) as one full product group."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from erp_sync.shared.consumer import BatchHandler, Delivery, Handled, Handler, HandlerResult
from erp_sync.shared.erp_events import CatalogUpdate, decode_event_of
from erp_sync.shared.erp_events import Variant as VariantData
from erp_sync.shared.logs import ids
from erp_sync.shared.internal_messages import MediaDownload, media_messages
from erp_sync.shared.models import Category
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.settings import Settings
from erp_sync.workers.catalog_media import pending_downloads, sync_media
from erp_sync.workers.idempotency import Arrival, arrivals_of, body_digest, record_event, record_events
from erp_sync.workers.stock import StockEvent, apply_stock_events
from erp_sync.workers.stock_rule import Total

logger = logging.getLogger(__name__)

# Plain SQL because SQLAlchemy 2.0 compiles a PostgreSQL ON CONFLICT anew on every execution
# (sqlalchemy#10445). Each WHERE compares ERP timestamps in the write itself, which also locks
# the row: two processes racing on one group or SKU can never go backwards.
_UPSERT_GROUP = text("""
INSERT INTO product_groups
    (product_group_id, group_name, description, tax_hsn, is_active, category_path, category_id, erp_updated_at)
VALUES (:product_group_id, :group_name, :description, :tax_hsn, :is_active, CAST(:category_path AS text[]),
        :category_id, :erp_updated_at)
ON CONFLICT (product_group_id) DO UPDATE
SET group_name = excluded.group_name, description = excluded.description, tax_hsn = excluded.tax_hsn,
    is_active = excluded.is_active, category_path = excluded.category_path, category_id = excluded.category_id,
    erp_updated_at = excluded.erp_updated_at, updated_at = now()
WHERE product_groups.erp_updated_at <= excluded.erp_updated_at
RETURNING product_group_id
""")
# Per SKU as well, so a late update of a SKU's old group cannot pull it back after a move.
# `previous` reads the owners as they were before this statement, for the move log.
_UPSERT_VARIANTS = text("""
WITH previous AS (
    SELECT sku, product_group_id FROM variants WHERE sku = ANY(CAST(:skus AS varchar[]))
), upserted AS (
    INSERT INTO variants (sku, product_group_id, display_name, price, mrp, attributes, is_active, erp_updated_at)
    SELECT sku, CAST(:group_id AS varchar), display_name, price, mrp, attributes, :is_active, :erp_updated_at
    FROM unnest(CAST(:skus AS varchar[]), CAST(:display_names AS varchar[]), CAST(:prices AS numeric[]),
                CAST(:mrps AS numeric[]), CAST(CAST(:attributes AS text[]) AS jsonb[]))
         AS given (sku, display_name, price, mrp, attributes)
    ON CONFLICT (sku) DO UPDATE
    SET product_group_id = excluded.product_group_id, display_name = excluded.display_name,
        price = excluded.price, mrp = excluded.mrp, attributes = excluded.attributes,
        is_active = excluded.is_active, erp_updated_at = excluded.erp_updated_at, updated_at = now()
    WHERE variants.erp_updated_at <= excluded.erp_updated_at
    RETURNING sku
)
SELECT upserted.sku, previous.product_group_id FROM upserted LEFT JOIN previous USING (sku) ORDER BY upserted.sku
""")
# An array rather than NOT IN (...): one statement text whatever the group's size, where the ORM
# spelled out and had psycopg parse a placeholder per SKU.
_DEACTIVATE_OMITTED = text("""
UPDATE variants SET is_active = false, updated_at = now()
WHERE product_group_id = :group_id AND is_active AND sku <> ALL(CAST(:skus AS varchar[]))
RETURNING sku
""")


class CatalogOutcome(StrEnum):
    """What applying a catalog.update did to its product group."""

    APPLIED = "applied"
    STALE = "stale"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class CatalogResult:
    """The outcome, and the images the media worker should fetch once this is committed."""

    outcome: CatalogOutcome
    media_downloads: tuple[MediaDownload, ...] = ()


def apply_catalog_update(event: CatalogUpdate, session: Session, digest: bytes | None = None) -> CatalogResult:
    """Apply the full product group unless it is a duplicate or older than the one applied.

    `digest` is its body's (`body_digest`); without one, a reused id is told only by its event type.
    A reused id is alerted and counted (`record_event`).
    """
    fresh = record_event(session, Arrival(event.event_id, event.event_type, digest))
    return _apply(session, [event], [fresh])[0]


def apply_catalog_batch(events: Sequence[CatalogUpdate], session: Session,
                        digests: Sequence[bytes | None] | None = None) -> list[CatalogResult]:
    """Apply each event as `apply_catalog_update` would, in arrival order, sharing what a batch can share:
    one statement records every id, one reads every category, the stock rule runs once over all figures.

    Raises:
        EventIdConflict: as `apply_inventory_batch` (the consumer then parks just that event).
    """
    if not events:
        return []
    return _apply(session, events, record_events(session, arrivals_of(events, digests)))


def _apply(session: Session, events: Sequence[CatalogUpdate], fresh: Sequence[bool]) -> list[CatalogResult]:
    """Stock figures go through the per-SKU stock rule even when the group part is stale: a figure
    is a fact of its own, and that rule alone knows whether a newer one exists. They are applied
    after every group, in arrival order, so the rule decides them as it would one event at a time."""
    category_ids = _category_ids(session, [event.data.category_hierarchy for event in events])
    results: list[CatalogResult] = []
    figures: list[StockEvent] = []
    for event, first, category_id in zip(events, fresh, category_ids, strict=True):
        data = event.data
        if not first:
            logger.info("event %s for group %s was applied before; ignored as a duplicate",
                        event.event_id, data.product_group_id, extra=ids(event_id=event.event_id))
            # A redelivery may mean the downloads sent after the first commit were lost with the
            # connection: ask again for the images still pending (the media worker skips the rest).
            results.append(CatalogResult(CatalogOutcome.DUPLICATE,
                                         pending_downloads(session, [v.sku for v in data.variants])))
            continue
        variants = sorted(data.variants, key=lambda v: v.sku)  # one lock order for every writer
        figures += _stock_events(event, variants)
        if not _upsert_group(session, event, category_id):
            logger.info("event %s for group %s is older than the update applied; ignored as stale",
                        event.event_id, data.product_group_id, extra=ids(event_id=event.event_id))
            results.append(CatalogResult(CatalogOutcome.STALE))
            continue
        applied_skus = _upsert_variants(session, event, variants)
        _deactivate_omitted(session, event)
        downloads = sync_media(session, [v for v in variants if v.sku in applied_skus])
        logger.info("event %s for group %s applied: %d variants", event.event_id, data.product_group_id,
                    len(variants), extra=ids(event_id=event.event_id))
        results.append(CatalogResult(CatalogOutcome.APPLIED, downloads))
    # The group's own line says what the event did; a line per SKU was a tenth of a large group's CPU.
    apply_stock_events(session, figures, log_each=False)
    return results


def decode_catalog_update(raw: bytes) -> CatalogUpdate:
    """Decode a queued body that must be a `catalog.update`."""
    return decode_event_of(raw, CatalogUpdate)


def build_handler(settings: Settings) -> Handler:
    """The catalog worker's handler; image downloads are requested after the commit."""

    def handle(delivery: Delivery, session: Session) -> Handled:
        result = apply_catalog_update(decode_catalog_update(delivery.body), session, body_digest(delivery.body))
        return _handled(result)

    return handle


def build_batch_handler(settings: Settings) -> BatchHandler:
    """The catalog worker's whole-batch handler: a batch of small groups shares its statements."""

    def handle_batch(deliveries: list[Delivery], session: Session) -> list[HandlerResult]:
        results = apply_catalog_batch([decode_catalog_update(delivery.body) for delivery in deliveries],
                                      session, [body_digest(delivery.body) for delivery in deliveries])
        return [_handled(result) for result in results]

    return handle_batch


def _handled(result: CatalogResult) -> Handled:
    return Handled(result.outcome.value, tuple(media_messages(result.media_downloads)))


def _category_ids(session: Session, paths: Sequence[Sequence[str]]) -> list[int | None]:
    """Each path's leaf category, created where missing; one read for all the paths."""
    names = {name for path in paths for name in path}
    if not names:
        return [None] * len(paths)
    # Categories are never deleted, so one read finds every existing level of every path.
    rows = session.execute(select(Category.id, Category.parent_id, Category.name).where(Category.name.in_(names)))
    known: dict[tuple[int | None, str], int] = {(parent_id, name): id_ for id_, parent_id, name in rows}
    leaves: list[int | None] = []
    for path in paths:
        parent: int | None = None
        for name in path:
            node = known.get((parent, name))
            if node is None:
                node = known[(parent, name)] = _create_category(session, parent, name)
            parent = node
        leaves.append(parent)
    return leaves


def _create_category(session: Session, parent_id: int | None, name: str) -> int:
    created = session.execute(
        pg_insert(Category)
        .values(parent_id=parent_id, name=name)
        .on_conflict_do_nothing(index_elements=[Category.parent_id, Category.name])
        .returning(Category.id)
    ).scalar_one_or_none()
    if created is not None:
        return created
    # Another transaction created it after our read; its commit made it visible to this statement.
    return session.execute(
        select(Category.id).where(Category.parent_id.is_not_distinct_from(parent_id), Category.name == name)
    ).scalar_one()


def _upsert_group(session: Session, event: CatalogUpdate, category_id: int | None) -> bool:
    data = event.data
    row = session.execute(_UPSERT_GROUP, {
        "product_group_id": data.product_group_id,
        "group_name": data.group_name,
        "description": data.description,
        "tax_hsn": data.tax_hsn,
        "is_active": data.is_active,
        "category_path": list(data.category_hierarchy),
        "category_id": category_id,
        "erp_updated_at": event.timestamp,
    }).first()
    return row is not None


def _upsert_variants(session: Session, event: CatalogUpdate, variants: Sequence[VariantData]) -> set[str]:
    group_id = event.data.product_group_id
    rows = session.execute(_UPSERT_VARIANTS, {
        "group_id": group_id,
        "is_active": event.data.is_active,
        "erp_updated_at": event.timestamp,
        "skus": [v.sku for v in variants],
        "display_names": [v.display_name for v in variants],
        "prices": [v.price for v in variants],
        "mrps": [v.mrp for v in variants],
        "attributes": [json.dumps({k: _json_number(value) for k, value in v.attributes.items()}) for v in variants],
    }).all()
    for sku, previous in rows:
        if previous is not None and previous != group_id:
            logger.info("event %s moved sku %s from group %s to group %s", event.event_id, sku, previous, group_id)
    return {sku for sku, _ in rows}


def _json_number(value: object) -> object:
    # JSONB takes JSON numbers; attribute values are filters, never money, so a float is exact enough.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _deactivate_omitted(session: Session, event: CatalogUpdate) -> None:
    # erp_updated_at stays: a newer update of another group may still claim the SKU.
    group_id = event.data.product_group_id
    deactivated = sorted(session.scalars(_DEACTIVATE_OMITTED, {
        "group_id": group_id, "skus": [v.sku for v in event.data.variants]}))
    if deactivated:
        logger.info("event %s deactivated skus %s of group %s, which it no longer lists",
                    event.event_id, ", ".join(deactivated), group_id)


def _stock_events(event: CatalogUpdate, variants: Iterable[VariantData]) -> list[StockEvent]:
    return [
        StockEvent(event.event_id, variant.sku, Total(variant.stock_quantity, event.timestamp), reason=event.event_type)
        for variant in variants
        if variant.stock_quantity is not None
    ]
