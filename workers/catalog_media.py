"""A variant's media rows kept in step with the ERP's list, and the downloads still owed."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Container, Iterable, Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from erp_sync.shared.erp_events import Variant as VariantData
from erp_sync.shared.internal_messages import MediaDownload
from erp_sync.shared.models import MediaStatus

# What an image that stays carries over when the list changes around it.
_DOWNLOAD_STATE = ("id", "status", "failure_reason", "attempts", "content_type", "byte_size", "sha256",
                   "downloaded_at")
# Plain SQL over arrays: one statement text for any number of rows. The ORM's multi-row INSERT
# and IN (...) spelled out (and had psycopg parse) a placeholder per value, half a 1,000-variant
# group's CPU.
_CURRENT = text(f"""
SELECT sku, url, is_main, {", ".join(_DOWNLOAD_STATE)} FROM media
WHERE sku = ANY(CAST(:skus AS varchar[])) ORDER BY sku, position
""")
_PENDING = text(f"""
SELECT id, sku, url FROM media
WHERE sku = ANY(CAST(:skus AS varchar[])) AND status = '{MediaStatus.PENDING.value}' ORDER BY sku, position
""")
# New images as one JSON document of [sku, position, url, is_main] rows: one call of the C encoder
# where four arrays had psycopg dump each of a large group's 2,000 images' values in Python.
_INSERT_NEW = text("""
INSERT INTO media (sku, position, url, is_main)
SELECT image ->> 0, CAST(image ->> 1 AS integer), image ->> 2, CAST(image ->> 3 AS boolean)
FROM jsonb_array_elements(CAST(:images AS jsonb)) AS new (image)
RETURNING id, sku, url, status
""")
_INSERT_KEPT = text("""
INSERT INTO media (sku, position, url, is_main, id, status, failure_reason, attempts, content_type, byte_size,
                   sha256, downloaded_at)
SELECT * FROM unnest(CAST(:sku AS varchar[]), CAST(:position AS integer[]), CAST(:url AS text[]),
                     CAST(:is_main AS boolean[]), CAST(:id AS bigint[]), CAST(:status AS varchar[]),
                     CAST(:failure_reason AS text[]), CAST(:attempts AS integer[]), CAST(:content_type AS varchar[]),
                     CAST(:byte_size AS bigint[]), CAST(:sha256 AS varchar[]), CAST(:downloaded_at AS timestamptz[]))
RETURNING id, sku, url, status
""")
_RETRY = text("""
UPDATE media SET status = :status, attempts = :attempts, failure_reason = :failure_reason
WHERE id = ANY(CAST(:ids AS bigint[])) RETURNING id, sku, url
""")
_DELETE = text("DELETE FROM media WHERE sku = ANY(CAST(:skus AS varchar[]))")
_NEW_COLUMNS = ("sku", "position", "url", "is_main")
_PENDING_STATUS = MediaStatus.PENDING.value
_FAILED_STATUS = MediaStatus.FAILED.value
# A failed image the ERP lists again starts afresh: its host may be back, or have published it since.
_AFRESH = {"status": _PENDING_STATUS, "attempts": 0, "failure_reason": None}


def sync_media(session: Session, variants: Sequence[VariantData],
               new_skus: Container[str] = frozenset()) -> tuple[MediaDownload, ...]:
    """Make each variant's media rows match its list; return a download for every pending row.

    An unchanged list leaves the rows alone. A changed one is written again in its new order:
    an image that stays keeps its row id and download state (confirmed, digest...), a new one
    starts pending. Either way an image that failed starts afresh, pending with no attempt spent:
    a host that was down, or had not yet published it, would otherwise leave it failed for good.
    `new_skus`: variants inserted in this transaction, which have no rows to read.
    """
    if not variants:
        return ()
    current: dict[str, list[Row[Any]]] = defaultdict(list)
    if known := [v.sku for v in variants if v.sku not in new_skus]:
        for row in session.execute(_CURRENT, {"skus": known}).all():
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
    written = _write(session, replaced, [sku for sku in replaced if current[sku]])
    downloads = [_download(row) for row in kept if row.status == _PENDING_STATUS]
    if retried := [row.id for row in kept if row.status == _FAILED_STATUS]:
        downloads += [_download(row) for row in session.execute(_RETRY, {"ids": retried, **_AFRESH}).all()]
    # Written rows unpacked rather than read by name: a fresh group's 2,000 images, a tenth of its CPU.
    return (*downloads,
            *(MediaDownload(media_id=media_id, sku=sku, url=url)
              for media_id, sku, url, status in written if status == _PENDING_STATUS))


def pending_downloads(session: Session, skus: Sequence[str]) -> tuple[MediaDownload, ...]:
    """A download for every image of these SKUs still pending (the media worker skips the rest)."""
    return tuple(_download(row) for row in session.execute(_PENDING, {"skus": list(skus)}).all())


def _download(row: Row[Any]) -> MediaDownload:
    return MediaDownload(media_id=row.id, sku=row.sku, url=row.url)


def _replacement(sku: str, wanted: Iterable[tuple[str, bool]], rows: Iterable[Row[Any]]) -> list[dict[str, Any]]:
    by_url: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        by_url[row.url].append(row)
    replacement = []
    for position, (url, is_main) in enumerate(wanted):
        new = {"sku": sku, "position": position, "url": url, "is_main": is_main}
        if by_url[url]:
            old = by_url[url].pop(0)
            new.update({name: getattr(old, name) for name in _DOWNLOAD_STATE})
            if old.status == _FAILED_STATUS:
                new.update(_AFRESH)
        replacement.append(new)
    return replacement


def _write(session: Session, replaced: dict[str, list[dict[str, Any]]],
           stale_skus: list[str]) -> list[Row[tuple[int, str, str, str]]]:
    """The rows written, each as (id, sku, url, status)."""
    if stale_skus:
        # Delete and insert again: moving positions in place would trip the (sku, position) key.
        session.execute(_DELETE, {"skus": stale_skus})
    rows = [row for sku_rows in replaced.values() for row in sku_rows]
    written: list[Row[tuple[int, str, str, str]]] = []
    if kept := [row for row in rows if "id" in row]:
        columns = (*_NEW_COLUMNS, *_DOWNLOAD_STATE)
        written.extend(session.execute(_INSERT_KEPT, {name: [row[name] for row in kept] for name in columns}).all())
    if new := [[row[name] for name in _NEW_COLUMNS] for row in rows if "id" not in row]:
        written.extend(session.execute(_INSERT_NEW, {"images": json.dumps(new)}).all())
    return written
