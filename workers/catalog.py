"""The catalog worker: applies `catalog.update` (spec 3.1) as one full product group."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared.consumer import Delivery, Handler
from shared.erp_events import CatalogUpdate, decode_event
from shared.erp_events import Variant as VariantData
from shared.errors import MessageDecodeError
from shared.internal_messages import MediaDownload
from shared.models import Category, Media, MediaStatus, ProductGroup, Variant
from shared.publisher import OutgoingMessage
from shared.settings import Settings
from workers.idempotency import record_event
from workers.stock import apply_absolute

logger = logging.getLogger(__name__)

# What a kept image carries over when a variant's media list changes around it.
_DOWNLOAD_STATE = ("id", "status", "failure_reason", "attempts", "content_type", "byte_size", "sha256",
                   "downloaded_at")


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


def apply_catalog_update(event: CatalogUpdate, session: Session) -> CatalogResult:
    """Apply the full product group unless it is a duplicate or older than the one applied.

    Stock figures go through the per-SKU stock rule even when the group part is stale: a figure
    is a fact of its own, and that rule alone knows whether a newer one exists.
    """
    data = event.data
    if not record_event(session, event.event_id, event.event_type):
        logger.info("event %s for group %s was applied before; ignored as a duplicate",
                    event.event_id, data.product_group_id)
        return CatalogResult(CatalogOutcome.DUPLICATE)
    variants = sorted(data.variants, key=lambda v: v.sku)  # one lock order for every writer
    if not _upsert_group(session, event, _category_id(session, data.category_hierarchy)):
        logger.info("event %s for group %s is older than the update applied; ignored as stale",
                    event.event_id, data.product_group_id)
        _apply_stock(session, event, variants)
        return CatalogResult(CatalogOutcome.STALE)
    applied_skus = _upsert_variants(session, event, variants)
    _deactivate_omitted(session, event)
    downloads = _sync_media(session, [v for v in variants if v.sku in applied_skus])
    _apply_stock(session, event, variants)
    return CatalogResult(CatalogOutcome.APPLIED, downloads)


def decode_catalog_update(raw: bytes) -> CatalogUpdate:
    """Decode a queued body that must be a `catalog.update`."""
    event = decode_event(raw)
    if not isinstance(event, CatalogUpdate):
        raise MessageDecodeError(f"expected a catalog.update event, got {event.event_type}", raw=raw)
    return event


def build_handler(settings: Settings) -> Handler:
    """The catalog worker's handler; image downloads are requested after the commit."""

    def handle(delivery: Delivery, session: Session) -> list[OutgoingMessage]:
        result = apply_catalog_update(decode_catalog_update(delivery.body), session)
        return [download.to_message() for download in result.media_downloads]

    return handle


def _category_id(session: Session, path: Sequence[str]) -> int | None:
    if not path:
        return None
    # Categories are never deleted, so one read finds every existing level of the path.
    rows = session.execute(select(Category.id, Category.parent_id, Category.name).where(Category.name.in_(path)))
    known = {(parent_id, name): id_ for id_, parent_id, name in rows}
    parent: int | None = None
    for name in path:
        node = known.get((parent, name))
        parent = node if node is not None else _create_category(session, parent, name)
    return parent


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
    statement = pg_insert(ProductGroup).values(
        product_group_id=data.product_group_id,
        group_name=data.group_name,
        description=data.description,
        tax_hsn=data.tax_hsn,
        is_active=data.is_active,
        category_path=list(data.category_hierarchy),
        category_id=category_id,
        erp_updated_at=event.timestamp,
    )
    fields = ("group_name", "description", "tax_hsn", "is_active", "category_path", "category_id", "erp_updated_at")
    # The WHERE compares in the write itself (and locks the row), so racing updates never go back.
    statement = statement.on_conflict_do_update(
        index_elements=[ProductGroup.product_group_id],
        set_={**{name: statement.excluded[name] for name in fields}, "updated_at": func.now()},
        where=ProductGroup.erp_updated_at <= statement.excluded.erp_updated_at,
    )
    return session.execute(statement.returning(ProductGroup.product_group_id)).first() is not None


def _upsert_variants(session: Session, event: CatalogUpdate, variants: Sequence[VariantData]) -> set[str]:
    group_id = event.data.product_group_id
    skus = [v.sku for v in variants]
    owners = {sku: owner for sku, owner in session.execute(
        select(Variant.sku, Variant.product_group_id).where(Variant.sku.in_(skus)))}
    statement = pg_insert(Variant).values([
        {
            "sku": v.sku,
            "product_group_id": group_id,
            "display_name": v.display_name,
            "price": v.price,
            "mrp": v.mrp,
            "attributes": {name: _json_number(value) for name, value in v.attributes.items()},
            "is_active": event.data.is_active,
            "erp_updated_at": event.timestamp,
        }
        for v in variants
    ])
    fields = ("product_group_id", "display_name", "price", "mrp", "attributes", "is_active", "erp_updated_at")
    # Per SKU as well: a late update of the old group must not pull a moved SKU back.
    statement = statement.on_conflict_do_update(
        index_elements=[Variant.sku],
        set_={**{name: statement.excluded[name] for name in fields}, "updated_at": func.now()},
        where=Variant.erp_updated_at <= statement.excluded.erp_updated_at,
    )
    applied = set(session.scalars(statement.returning(Variant.sku)))
    for sku in sorted(applied):
        previous = owners.get(sku)
        if previous is not None and previous != group_id:
            logger.info("event %s moved sku %s from group %s to group %s", event.event_id, sku, previous, group_id)
    return applied


def _json_number(value: object) -> object:
    # JSONB takes JSON numbers; attribute values are filters, never money, so a float is exact enough.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _deactivate_omitted(session: Session, event: CatalogUpdate) -> None:
    # erp_updated_at stays: a newer update of another group may still claim the SKU.
    group_id = event.data.product_group_id
    statement = (
        update(Variant)
        .where(
            Variant.product_group_id == group_id,
            Variant.sku.not_in([v.sku for v in event.data.variants]),
            Variant.is_active,
        )
        .values(is_active=False)
        .returning(Variant.sku)
    )
    deactivated = sorted(session.scalars(statement))
    if deactivated:
        logger.info("event %s deactivated skus %s of group %s, which it no longer lists",
                    event.event_id, ", ".join(deactivated), group_id)


def _sync_media(session: Session, variants: Sequence[VariantData]) -> tuple[MediaDownload, ...]:
    if not variants:
        return ()
    current: dict[str, list[Row[Any]]] = defaultdict(list)
    columns = [Media.sku, Media.url, Media.is_main, *(getattr(Media, name) for name in _DOWNLOAD_STATE)]
    for row in session.execute(
        select(*columns).where(Media.sku.in_([v.sku for v in variants])).order_by(Media.sku, Media.position)
    ):
        current[row.sku].append(row)
    kept: list[Row[Any]] = []
    replaced: dict[str, list[dict[str, Any]]] = {}
    for variant in variants:
        rows = current[variant.sku]
        wanted = [(str(m.url), m.is_main) for m in variant.media]
        if wanted == [(row.url, row.is_main) for row in rows]:
            kept.extend(rows)
        else:
            replaced[variant.sku] = _replacement(variant.sku, wanted, rows)
    inserted = _replace_media(session, replaced)
    return tuple(
        MediaDownload(media_id=row.id, sku=row.sku, url=row.url)
        for row in [*kept, *inserted]
        if row.status == MediaStatus.PENDING
    )


def _replacement(sku: str, wanted: Iterable[tuple[str, bool]], rows: Iterable[Row[Any]]) -> list[dict[str, Any]]:
    # An image that stays keeps its row id and its download state (confirmed, digest...).
    by_url: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        by_url[row.url].append(row)
    replacement = []
    for position, (url, is_main) in enumerate(wanted):
        new = {"sku": sku, "position": position, "url": url, "is_main": is_main}
        if by_url[url]:
            old = by_url[url].pop(0)
            new.update({name: getattr(old, name) for name in _DOWNLOAD_STATE})
        replacement.append(new)
    return replacement


def _replace_media(session: Session, replaced: dict[str, list[dict[str, Any]]]) -> list[Row[Any]]:
    if not replaced:
        return []
    # Delete and insert again: moving positions in place would trip the (sku, position) key.
    session.execute(delete(Media).where(Media.sku.in_(replaced)))
    rows = [row for sku_rows in replaced.values() for row in sku_rows]
    returned = (Media.id, Media.sku, Media.url, Media.status)
    inserted: list[Row[Any]] = []
    for with_id in (True, False):
        batch = [row for row in rows if ("id" in row) is with_id]
        if batch:
            inserted.extend(session.execute(insert(Media).returning(*returned), batch))
    return inserted


def _apply_stock(session: Session, event: CatalogUpdate, variants: Iterable[VariantData]) -> None:
    for variant in variants:
        if variant.stock_quantity is not None:
            apply_absolute(
                session,
                sku=variant.sku,
                quantity=variant.stock_quantity,
                erp_timestamp=event.timestamp,
                event_id=event.event_id,
                reason=event.event_type,
            )
