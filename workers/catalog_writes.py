"""A catalog batch's groups and variants written in a statement each, however many events they come from.

The events given share no product group and no SKU (workers/catalog.py splits a batch into such
rounds), so each row is written at most once per statement and the order of the events within a
round cannot change what they leave behind.

A row takes an update unless it holds a newer one: one the ERP stamped later, or, of the same ERP
timestamp, one the door received later (`received_at`, shared/receipt_stamp.py), whichever worker
process commits last. Where either receipt stamp is unknown (a message queued by an earlier
release's door, a row written before migration 0024) the later arrival wins the tie.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp_sync.shared.erp_events import CatalogUpdate

# Plain SQL because SQLAlchemy 2.0 compiles a PostgreSQL ON CONFLICT anew on every execution
# (sqlalchemy#10445), and over arrays: one statement text for any number of rows. Each WHERE
# compares ERP timestamps (on a tie, receipt stamps) in the write itself, which also locks the row:
# two processes racing on one group or SKU can never go backwards. Rows come in key order: one lock order for every writer.
# In RETURNING, xmax = 0 marks a row the statement inserted rather than updated: new to the catalog.
# The tie rule of the docstring, on the row as it stands ({row}) and the update (excluded):
_HOLDS_NO_NEWER = """{row}.erp_updated_at < excluded.erp_updated_at
   OR {row}.erp_updated_at = excluded.erp_updated_at AND {tie}"""
_TIE_TO_THE_LATER_RECEIVED = "coalesce({row}.received_at <= excluded.received_at, true)"
# A stale event's SKUs go only over a row strictly older: on a tie, received earlier, both known.
_TIE_TO_THE_LATER_RECEIVED_ALONE = "coalesce({row}.received_at < excluded.received_at, false)"
_UPSERT_GROUPS = text("""
INSERT INTO product_groups
    (product_group_id, group_name, description, tax_hsn, is_active, category_path, category_id, erp_updated_at,
     received_at)
SELECT product_group_id, group_name, description, tax_hsn, is_active,
       ARRAY(SELECT name FROM jsonb_array_elements_text(category_path) WITH ORDINALITY AS path (name, level)
             ORDER BY level),
       category_id, erp_updated_at, received_at
FROM unnest(CAST(:product_group_ids AS varchar[]), CAST(:group_names AS varchar[]), CAST(:descriptions AS text[]),
            CAST(:tax_hsns AS varchar[]), CAST(:is_active AS boolean[]), CAST(CAST(:category_paths AS text[]) AS jsonb[]),
            CAST(:category_ids AS integer[]), CAST(:erp_updated_at AS timestamptz[]), CAST(:received_at AS timestamptz[]))
     AS given (product_group_id, group_name, description, tax_hsn, is_active, category_path, category_id, erp_updated_at,
               received_at)
ON CONFLICT (product_group_id) DO UPDATE
SET group_name = excluded.group_name, description = excluded.description, tax_hsn = excluded.tax_hsn,
    is_active = excluded.is_active, category_path = excluded.category_path, category_id = excluded.category_id,
    erp_updated_at = excluded.erp_updated_at, received_at = excluded.received_at, updated_at = now()
WHERE """ + _HOLDS_NO_NEWER.format(row="product_groups", tie=_TIE_TO_THE_LATER_RECEIVED.format(row="product_groups")) + """
RETURNING product_group_id, xmax = 0 AS inserted
""")
# Per SKU as well, so a late update of a SKU's old group cannot pull it back after a move. An
# event's own fields come once per event, its variants name it by number. `previous` reads the
# owners as they were before this statement (the move log), only of the SKUs that were there.
_UPSERT_VARIANTS = text("""
WITH event AS (
    SELECT * FROM unnest(CAST(:group_ids AS varchar[]), CAST(:is_active AS boolean[]),
                         CAST(:erp_updated_at AS timestamptz[]), CAST(:received_at AS timestamptz[]),
                         CAST(:strict AS boolean[])) WITH ORDINALITY
        AS event (group_id, is_active, erp_updated_at, received_at, strict, number)
), upserted AS (
    INSERT INTO variants (sku, product_group_id, display_name, price, mrp, attributes, is_active, erp_updated_at,
                          received_at)
    SELECT given.sku, event.group_id, given.display_name, given.price, given.mrp, given.attributes, event.is_active,
           event.erp_updated_at, event.received_at
    FROM ROWS FROM (unnest(CAST(:skus AS varchar[])), unnest(CAST(:display_names AS varchar[])),
                    unnest(CAST(CAST(:prices AS text[]) AS numeric[])), unnest(CAST(CAST(:mrps AS text[]) AS numeric[])),
                    jsonb_array_elements(CAST(:attributes AS jsonb)), unnest(CAST(:events AS integer[])))
         WITH ORDINALITY AS given (sku, display_name, price, mrp, attributes, event, position)
    JOIN event ON event.number = given.event
    ORDER BY given.position
    ON CONFLICT (sku) DO UPDATE
    SET product_group_id = excluded.product_group_id, display_name = excluded.display_name,
        price = excluded.price, mrp = excluded.mrp, attributes = excluded.attributes,
        is_active = excluded.is_active, erp_updated_at = excluded.erp_updated_at, received_at = excluded.received_at,
        updated_at = now()
    -- Checked on the row as it stands once its lock is ours (a writer of the same second committed
    -- meanwhile included): a stale event's SKUs only over a strictly older row. Each group is one
    -- event's in a statement (workers/catalog.py, _rounds).
    WHERE """ + _HOLDS_NO_NEWER.format(row="variants", tie="""CASE
        WHEN coalesce((SELECT strict FROM event WHERE event.group_id = excluded.product_group_id), false)
        THEN """ + _TIE_TO_THE_LATER_RECEIVED_ALONE.format(row="variants") + """
        ELSE """ + _TIE_TO_THE_LATER_RECEIVED.format(row="variants") + " END") + """
    RETURNING sku, xmax = 0 AS inserted
), previous AS (
    SELECT variants.sku, variants.product_group_id FROM upserted JOIN variants USING (sku) WHERE NOT upserted.inserted
)
SELECT upserted.sku, upserted.inserted, previous.product_group_id FROM upserted LEFT JOIN previous USING (sku)
""")
# The upsert locks the listed SKUs and the deactivation then the groups' other variants: two statements,
# two lock orders, and two batches each moving a SKU into the other's group deadlocked. Where a group
# holds an active variant its event no longer lists (the deactivation will lock it), both sets are
# locked here first, in SKU order, the one order every catalog writer takes them in. A reload of the
# same SKUs locks nothing here: locking every row first cost PostgreSQL a tenth more a variant.
_LOCK_VARIANTS = text("""
SELECT sku FROM variants
WHERE EXISTS (
    SELECT FROM variants held, unnest(CAST(:group_ids AS varchar[])) AS applied (group_id)
     WHERE held.product_group_id = applied.group_id AND held.is_active
       AND NOT EXISTS (
           SELECT FROM unnest(CAST(:listed_group_ids AS varchar[]), CAST(:listed_skus AS varchar[]))
                AS listed (group_id, sku)
            WHERE listed.sku = held.sku AND listed.group_id = held.product_group_id))
  AND (sku = ANY(CAST(:skus AS varchar[])) OR product_group_id = ANY(CAST(:group_ids AS varchar[])))
ORDER BY sku
FOR UPDATE
""")
# An anti-join rather than `sku <> ALL(...)` per group, which compared each row with every SKU listed.
_DEACTIVATE_OMITTED = text("""
UPDATE variants SET is_active = false, updated_at = now()
FROM unnest(CAST(:group_ids AS varchar[])) AS applied (group_id)
WHERE variants.product_group_id = applied.group_id AND variants.is_active
  AND NOT EXISTS (
      SELECT FROM unnest(CAST(:listed_group_ids AS varchar[]), CAST(:listed_skus AS varchar[])) AS listed (group_id, sku)
      WHERE listed.sku = variants.sku AND listed.group_id = variants.product_group_id)
RETURNING variants.product_group_id, variants.sku
""")


@dataclass(frozen=True, slots=True)
class WrittenVariant:
    """A SKU an event wrote: whether it is new to the catalog, and the group it was in before."""

    sku: str
    inserted: bool
    previous_group_id: str | None


def upsert_groups(session: Session, events: Sequence[CatalogUpdate], category_ids: Sequence[int | None],
                  received: Sequence[datetime | None]) -> dict[str, bool]:
    """Write each event's group unless a newer update of it is applied; each group written, and
    whether it is new to the catalog. `received`: when the door received each event (None: unknown)."""
    order = sorted(range(len(events)), key=lambda index: events[index].data.product_group_id)
    data = [events[index].data for index in order]
    return dict(session.execute(_UPSERT_GROUPS, {
        "product_group_ids": [group.product_group_id for group in data],
        "group_names": [group.group_name for group in data],
        "descriptions": [group.description for group in data],
        "tax_hsns": [group.tax_hsn for group in data],
        "is_active": [group.is_active for group in data],
        "category_paths": [json.dumps(group.category_hierarchy) for group in data],
        "category_ids": [category_ids[index] for index in order],
        "erp_updated_at": [events[index].timestamp for index in order],
        "received_at": [received[index] for index in order],
    }).tuples().all())


def upsert_variants(session: Session, events: Sequence[CatalogUpdate], stale: Sequence[CatalogUpdate] = (),
                    received: Sequence[datetime | None] | None = None) -> list[WrittenVariant]:
    """Write every variant of the events unless a newer update of its SKU is applied; the ones written.

    The variants of the `stale` events (their groups hold a newer update) are written inactive, and
    only over a row strictly older than the event: one of the same time may be the newer update's own,
    unless both receipt stamps tell it was received earlier. `received`: when the door received each
    of `events`, then each of `stale` (None: unknown).
    """
    writing = [*events, *stale]
    is_stale = [False] * len(events) + [True] * len(stale)
    rows = sorted((variant.sku, number, variant)
                  for number, event in enumerate(writing, start=1) for variant in event.data.variants)
    variants = [variant for _, _, variant in rows]
    result = session.execute(_UPSERT_VARIANTS, {
        "group_ids": [event.data.product_group_id for event in writing],
        "is_active": [event.data.is_active and not old for event, old in zip(writing, is_stale, strict=True)],
        "erp_updated_at": [event.timestamp for event in writing],
        "received_at": [None] * len(writing) if received is None else list(received),
        "strict": is_stale,
        "skus": [sku for sku, _, _ in rows],
        "display_names": [variant.display_name for variant in variants],
        # As text: psycopg dumps a Decimal in Python, three times the time of its str().
        "prices": [str(variant.price) for variant in variants],
        "mrps": [None if variant.mrp is None else str(variant.mrp) for variant in variants],
        # One JSON document rather than one per variant: a single call of the C encoder.
        "attributes": json.dumps([variant.attributes for variant in variants], default=_json_number),
        "events": [number for _, number, _ in rows],
    })
    return [WrittenVariant(sku, inserted, previous) for sku, inserted, previous in result.all()]


def lock_variants(session: Session, events: Sequence[CatalogUpdate], updated: Sequence[CatalogUpdate]) -> None:
    """Where an updated group holds an active variant its event no longer lists, lock, in SKU order,
    the variants the events list and those the updated groups hold: every row that writing the
    events and deactivating what the groups no longer list will lock."""
    listed = [(event.data.product_group_id, variant.sku) for event in updated for variant in event.data.variants]
    session.execute(_LOCK_VARIANTS, {
        "skus": sorted(variant.sku for event in events for variant in event.data.variants),
        "group_ids": sorted(event.data.product_group_id for event in updated),
        "listed_group_ids": [group_id for group_id, _ in listed],
        "listed_skus": [sku for _, sku in listed],
    })


def deactivate_omitted(session: Session, events: Sequence[CatalogUpdate]) -> list[tuple[str, str]]:
    """Deactivate the variants each event's group holds and it no longer lists; (group, SKU) of each."""
    # erp_updated_at stays: a newer update of another group may still claim the SKU.
    listed = [(event.data.product_group_id, variant.sku) for event in events for variant in event.data.variants]
    return [(group_id, sku) for group_id, sku in session.execute(_DEACTIVATE_OMITTED, {
        "group_ids": sorted(event.data.product_group_id for event in events),
        "listed_group_ids": [group_id for group_id, _ in listed],
        "listed_skus": [sku for _, sku in listed],
    }).all()]


def _json_number(value: object) -> int | float:
    # JSONB takes JSON numbers; the door lets through only those a float holds exactly (15 significant digits).
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not an attribute value")
