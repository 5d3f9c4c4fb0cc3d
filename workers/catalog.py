"""The catalog worker: applies `catalog.update` (spec 3.1) as one full product group."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from erp_sync.shared.consumer import BatchHandler, Delivery, Handled, Handler, HandlerResult
from erp_sync.shared.erp_events import CatalogUpdate, decode_event_of
from erp_sync.shared.erp_events import Variant as VariantData
from erp_sync.shared.heap import collector_paused
from erp_sync.shared.logs import ids
from erp_sync.shared.internal_messages import MediaDownload, media_messages
from erp_sync.shared.models import Category
from erp_sync.shared.receipt_stamp import received_at
from erp_sync.shared.retry_policy import failed_attempts
from erp_sync.shared.settings import Settings
from erp_sync.workers.catalog_media import pending_downloads, sync_media
from erp_sync.workers.catalog_writes import deactivate_omitted, lock_variants, upsert_groups, upsert_variants
from erp_sync.workers.idempotency import Arrival, arrivals_of, body_digest, record_event, record_events
from erp_sync.workers.idempotency_window import IdempotencyWindow
from erp_sync.workers.stock import StockEvent, apply_stock_events
from erp_sync.workers.stock_rule import Total

logger = logging.getLogger(__name__)


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


def apply_catalog_update(event: CatalogUpdate, session: Session, digest: bytes | None = None, *,
                         resent: bool = True, received: datetime | None = None) -> CatalogResult:
    """Apply the full product group unless it is a duplicate or older than the one applied.

    `digest` is its body's (`body_digest`); without one, a reused id is told only by its event type.
    A reused id is alerted and counted (`record_event`). `resent`: the message came round again (`came_round_again`
    below), so a duplicate asks again for its images still pending. `received`: when the door received
    it (shared/receipt_stamp.py), which settles a tie with an update of the same ERP timestamp.
    """
    fresh = record_event(session, Arrival.of(event, digest))
    return _apply(session, [event], [fresh], [resent], [received])[0]


def apply_catalog_batch(events: Sequence[CatalogUpdate], session: Session,
                        digests: Sequence[bytes | None] | None = None,
                        resent: Sequence[bool] | None = None,
                        received: Sequence[datetime | None] | None = None) -> list[CatalogResult]:
    """Apply each event as `apply_catalog_update` would, in arrival order, sharing what a batch can share:
    one statement records every id, one reads every category, one of each kind writes the groups,
    variants and images of all the events that share no group and no SKU, the stock rule runs once
    over all figures.

    Raises:
        EventIdConflict: as `apply_inventory_batch` (the consumer then parks just that event).
    """
    if not events:
        return []
    return _apply(session, events, record_events(session, arrivals_of(events, digests)),
                  [True] * len(events) if resent is None else resent,
                  [None] * len(events) if received is None else received)


def came_round_again(delivery: Delivery) -> bool:
    """Whether the message came round again (the broker's redelivery, or the retry path): the
    downloads its first handling asked for after the commit may have been lost with the connection.
    A webhook the ERP sent again is a message of its own, and its first handling asked already."""
    return delivery.redelivered or failed_attempts(delivery.headers) > 0


def _apply(session: Session, events: Sequence[CatalogUpdate], fresh: Sequence[bool],
           resent: Sequence[bool], received: Sequence[datetime | None]) -> list[CatalogResult]:
    """Stock figures go through the per-SKU stock rule even when the group part is stale: a figure
    is a fact of its own, and that rule alone knows whether a newer one exists. They are applied
    after every group, in arrival order, so the rule decides them as it would one event at a time."""
    category_ids = _category_ids(session, [event.data.category_hierarchy for event in events])
    figures = [figure for event, first, stamp in zip(events, fresh, received, strict=True) if first
               for figure in _stock_events(event, sorted(event.data.variants, key=_sku), stamp)]
    results: dict[int, CatalogResult] = {}
    for round_ in _rounds(events):
        results |= _apply_round(session, [_Arrived(index, events[index], fresh[index], resent[index],
                                                   category_ids[index], received[index]) for index in round_])
    # The group's own line says what the event did; a line per SKU was a tenth of a large group's CPU.
    apply_stock_events(session, figures, log_each=False)
    return [results[index] for index in range(len(events))]


@dataclass(frozen=True, slots=True)
class _Arrived:
    index: int  # in the batch
    event: CatalogUpdate
    first: bool  # its id was not recorded before
    resent: bool  # its message came round again (`came_round_again`)
    category_id: int | None
    received: datetime | None  # when the door received it (shared/receipt_stamp.py)


def _rounds(events: Sequence[CatalogUpdate]) -> list[list[int]]:
    """The events' indexes in rounds whose events share no product group and no SKU; an event
    comes in a later round than every earlier event it shares one with, so that it sees their
    writes as it would one event at a time. A batch of distinct groups is one round."""
    last_round: dict[object, int] = {}  # a group id (in a tuple) or SKU -> the round last holding it
    rounds: list[list[int]] = []
    for index, event in enumerate(events):
        keys = [("group", event.data.product_group_id), *(variant.sku for variant in event.data.variants)]
        number = 1 + max(last_round.get(key, -1) for key in keys)
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(index)
        last_round.update(dict.fromkeys(keys, number))
    return rounds


def _apply_round(session: Session, arrived: Sequence[_Arrived]) -> dict[int, CatalogResult]:
    """Each event's result, from a statement of each kind for all of them."""
    duplicates = [item for item in arrived if not item.first]
    fresh = [item for item in arrived if item.first]
    # A redelivery may mean the downloads sent after the first commit were lost with the
    # connection: ask again for the images still pending (the media worker skips the rest). Not
    # for the ERP's copies of a webhook: each asked again for every image a slow host still held.
    resent_skus = [variant.sku for item in duplicates if item.resent
                   for variant in sorted(item.event.data.variants, key=_sku)]
    pending = _by_event(duplicates, pending_downloads(session, resent_skus) if resent_skus else ())
    written_groups = upsert_groups(session, [item.event for item in fresh], [item.category_id for item in fresh],
                                   [item.received for item in fresh]) if fresh else {}
    applied = [item for item in fresh if item.event.data.product_group_id in written_groups]
    # A stale event still tells where its SKUs were at its time. One whose own row is older than the
    # event is in no newer update at all (the group's newer one, applied, did not list it, or the row
    # would be as new): it left the group after the event, so it is written there, inactive. Else a
    # SKU the ERP moved and then dropped stayed on sale in its first group when the move came late.
    stale = [item for item in fresh if item.event.data.product_group_id not in written_groups]
    # A group new to the catalog holds only what its event lists. Its event left out, a first load
    # never runs this: while the tables grow faster than their statistics, its plan (a hash join
    # over a whole scan of variants) took a tenth of a second a batch at 200,000 variants.
    updated = [item.event for item in applied if not written_groups[item.event.data.product_group_id]]
    if updated:
        lock_variants(session, [item.event for item in applied + stale], updated)
    # One statement for both: its rows are locked in SKU order, the one order of every catalog writer.
    written = upsert_variants(session, [item.event for item in applied], [item.event for item in stale],
                              [item.received for item in applied + stale]) if applied or stale else []
    deactivated = deactivate_omitted(session, updated) if updated else []
    written_skus = {row.sku for row in written}
    downloads = _by_event(applied, sync_media(
        session,
        sorted((variant for item in applied for variant in item.event.data.variants if variant.sku in written_skus),
               key=_sku),
        {row.sku for row in written if row.inserted}))

    group_of = {variant.sku: item.event.data.product_group_id
                for item in applied for variant in item.event.data.variants}
    moved: dict[str, list[tuple[str, str]]] = defaultdict(list)  # applied group id -> (SKU, its group before)
    for row in written:
        group_id = group_of.get(row.sku)  # None: a stale event's SKU, told apart below
        if group_id is not None and row.previous_group_id not in (None, group_id):
            moved[group_id].append((row.sku, row.previous_group_id))
    omitted: dict[str, list[str]] = defaultdict(list)
    for group_id, sku in deactivated:
        omitted[group_id].append(sku)
    results: dict[int, CatalogResult] = {}
    for item in arrived:
        event, group_id = item.event, item.event.data.product_group_id
        if not item.first:
            logger.info("event %s for group %s was applied before; ignored as a duplicate",
                        event.event_id, group_id, extra=ids(event_id=event.event_id))
            results[item.index] = CatalogResult(CatalogOutcome.DUPLICATE, tuple(pending[item.index]))
        elif group_id not in written_groups:
            logger.info("event %s for group %s is older than the update applied; ignored as stale "
                        "(its stock figures still go through the stock rule)",
                        event.event_id, group_id, extra=ids(event_id=event.event_id))
            if retired := sorted(v.sku for v in event.data.variants if v.sku in written_skus):
                logger.info("event %s wrote skus %s into group %s, inactive: the group's newer update "
                            "no longer lists them", event.event_id, ", ".join(retired), group_id,
                            extra=ids(event_id=event.event_id))
            results[item.index] = CatalogResult(CatalogOutcome.STALE)
        else:
            for sku, previous in sorted(moved[group_id]):
                logger.info("event %s moved sku %s from group %s to group %s", event.event_id, sku, previous, group_id)
            if omitted[group_id]:
                logger.info("event %s deactivated skus %s of group %s, which it no longer lists",
                            event.event_id, ", ".join(sorted(omitted[group_id])), group_id)
            for sku in sorted(v.sku for v in event.data.variants if v.sku not in written_skus):
                logger.info("event %s left sku %s in the group a newer update put it in", event.event_id, sku,
                            extra=ids(event_id=event.event_id, sku=sku))
            logger.info("event %s for group %s applied: %d variants", event.event_id, group_id,
                        sum(v.sku in written_skus for v in event.data.variants), extra=ids(event_id=event.event_id))
            results[item.index] = CatalogResult(CatalogOutcome.APPLIED, tuple(downloads[item.index]))
    return results


def _by_event(arrived: Sequence[_Arrived], downloads: Iterable[MediaDownload]) -> dict[int, list[MediaDownload]]:
    """The downloads of each event's SKUs (no SKU is in two events of a round), in the order given."""
    event_of = {variant.sku: item.index for item in arrived for variant in item.event.data.variants}
    by_event: dict[int, list[MediaDownload]] = {item.index: [] for item in arrived}
    for download in downloads:
        by_event[event_of[download.sku]].append(download)
    return by_event


def _sku(variant: VariantData) -> str:
    return variant.sku


def decode_catalog_update(raw: bytes) -> CatalogUpdate:
    """Decode a queued body that must be a `catalog.update`."""
    return decode_event_of(raw, CatalogUpdate)


def build_handler(settings: Settings) -> Handler:
    """The catalog worker's handler; image downloads are requested after the commit.

    An event dated before the idempotency window is parked, not applied.
    """
    window = IdempotencyWindow.of(settings)

    def handle(delivery: Delivery, session: Session) -> Handled:
        with collector_paused():
            event = window.admit(decode_catalog_update(delivery.body))
            result = apply_catalog_update(event, session, body_digest(delivery.body), resent=came_round_again(delivery),
                                          received=received_at(delivery.headers))
        return _handled(result)

    return handle


def build_batch_handler(settings: Settings) -> BatchHandler:
    """The catalog worker's whole-batch handler: a batch of small groups shares its statements.

    An event dated before the idempotency window fails the batch, run then message by message.
    """
    window = IdempotencyWindow.of(settings)

    def handle_batch(deliveries: list[Delivery], session: Session) -> list[HandlerResult]:
        with collector_paused():
            events = window.admit_all([decode_catalog_update(delivery.body) for delivery in deliveries])
            results = apply_catalog_batch(events, session, [body_digest(delivery.body) for delivery in deliveries],
                                          [came_round_again(delivery) for delivery in deliveries],
                                          [received_at(delivery.headers) for delivery in deliveries])
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
    nodes: dict[tuple[str, ...], int | None] = {(): None}
    # Every batch creates what is missing in one order, by path (a parent before its children): two
    # batches creating the same new categories in other orders deadlocked on their unique index.
    for prefix in sorted({tuple(path[:depth]) for path in paths for depth in range(1, len(path) + 1)}):
        parent, name = nodes[prefix[:-1]], prefix[-1]
        node = known.get((parent, name))
        nodes[prefix] = node if node is not None else _create_category(session, parent, name)
    return [nodes[tuple(path)] for path in paths]


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


def _stock_events(event: CatalogUpdate, variants: Iterable[VariantData], received: datetime | None) -> list[StockEvent]:
    return [
        StockEvent(event.event_id, variant.sku, Total(variant.stock_quantity, event.timestamp, received),
                   reason=event.event_type)
        for variant in variants
        if variant.stock_quantity is not None
    ]
