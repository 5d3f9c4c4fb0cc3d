"""Reading and writing product groups and their variants in the store."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from erp_sync.sandbox_erp.store import Store

Group = dict[str, Any]

_GROUP_COLUMNS = "group_id, group_name, description, categories, tax_hsn, is_active"
_VARIANT_COLUMNS = "sku, group_id, display_name, price, mrp, qty, attributes, media"


def money(value: Any) -> str:
    """A price as the exact text with 2 decimals the store keeps."""
    return f"{Decimal(str(value)):.2f}"


def money_number(text: str | None) -> float | None:
    """A stored price as a JSON number."""
    # A 2-decimal value under 15 digits prints back as exactly that decimal, so the wire text stays exact.
    return None if text is None else float(Decimal(text))


def _dumps(value: Any) -> str:
    return json.dumps(value, default=lambda item: float(item) if isinstance(item, Decimal) else str(item))


def _group_row(group: Group) -> tuple[Any, ...]:
    return (
        group["product_group_id"], group["group_name"], group.get("description", ""),
        _dumps(group.get("category_hierarchy", [])), group.get("tax_hsn"), int(bool(group.get("is_active", True))),
    )


def _variant_rows(group: Group) -> Iterator[tuple[Any, ...]]:
    for variant in group["variants"]:
        mrp = variant.get("mrp")
        yield (
            variant["sku"], group["product_group_id"], variant["display_name"], money(variant["price"]),
            None if mrp is None else money(mrp), int(variant.get("stock_quantity") or 0),
            _dumps(variant.get("attributes", {})), _dumps(variant["media"]) if variant.get("media") else None,
        )


def insert_groups(conn: sqlite3.Connection, groups: Iterable[Group]) -> int:
    """Insert or replace groups with their variants; returns the number of variants written."""
    count = 0
    for group in groups:
        conn.execute(f"INSERT OR REPLACE INTO product_groups ({_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", _group_row(group))
        rows = list(_variant_rows(group))
        conn.executemany(f"INSERT OR REPLACE INTO variants ({_VARIANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        count += len(rows)
    return count


def bulk_insert(store: Store, groups: Iterable[Group], batch_groups: int = 2000) -> int:
    """Insert many groups in one transaction, a batch at a time so memory stays flat."""
    count = 0
    batch: list[Group] = []
    with store.transaction() as conn:
        for group in groups:
            batch.append(group)
            if len(batch) >= batch_groups:
                count += _insert_batch(conn, batch)
                batch.clear()
        count += _insert_batch(conn, batch)
    return count


def _insert_batch(conn: sqlite3.Connection, batch: list[Group]) -> int:
    conn.executemany(f"INSERT OR REPLACE INTO product_groups ({_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                     [_group_row(group) for group in batch])
    rows = [row for group in batch for row in _variant_rows(group)]
    conn.executemany(f"INSERT OR REPLACE INTO variants ({_VARIANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def variant_count(conn: sqlite3.Connection) -> int:
    """How many SKUs the ERP knows."""
    return int(conn.execute("SELECT count(*) FROM variants").fetchone()[0])


def quantities(conn: sqlite3.Connection, skus: Iterable[str]) -> dict[str, int]:
    """Current stock of the given SKUs that exist."""
    wanted = sorted(set(skus))
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(f"SELECT sku, qty FROM variants WHERE sku IN ({marks})", wanted).fetchall()
    return {sku: int(qty) for sku, qty in rows}


def set_quantity(conn: sqlite3.Connection, sku: str, qty: int) -> None:
    """Overwrite one SKU's stock."""
    conn.execute("UPDATE variants SET qty = ? WHERE sku = ?", (qty, sku))


def set_price(conn: sqlite3.Connection, sku: str, price: Any, mrp: Any | None) -> str | None:
    """Change one SKU's price (and mrp when given); returns its group id, None for an unknown SKU."""
    row = conn.execute("SELECT group_id FROM variants WHERE sku = ?", (sku,)).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE variants SET price = ? WHERE sku = ?", (money(price), sku))
    if mrp is not None:
        conn.execute("UPDATE variants SET mrp = ? WHERE sku = ?", (money(mrp), sku))
    return str(row[0])


def served_media(sku: str, media_base: str) -> list[dict[str, Any]]:
    """The two pictures the sandbox serves itself for a generated SKU."""
    return [
        {"url": f"{media_base}/media/{sku}.png", "is_main": True},
        {"url": f"{media_base}/media/{sku}-back.png", "is_main": False},
    ]


def load_group(conn: sqlite3.Connection, group_id: str, media_base: str) -> Group | None:
    """A group as the `data` of a catalog.update event, None if unknown."""
    row = conn.execute(f"SELECT {_GROUP_COLUMNS} FROM product_groups WHERE group_id = ?", (group_id,)).fetchone()
    if row is None:
        return None
    variants = conn.execute(f"SELECT {_VARIANT_COLUMNS} FROM variants WHERE group_id = ? ORDER BY sku", (group_id,))
    return {
        "product_group_id": row[0], "group_name": row[1], "description": row[2],
        "category_hierarchy": json.loads(row[3]), "tax_hsn": row[4], "is_active": bool(row[5]),
        "variants": [
            {
                "sku": v[0], "display_name": v[2], "price": money_number(v[3]), "mrp": money_number(v[4]),
                "stock_quantity": int(v[5]), "attributes": json.loads(v[6]),
                "media": json.loads(v[7]) if v[7] else served_media(v[0], media_base),
            }
            for v in variants
        ],
    }


def stock_chunks(store: Store, chunk_rows: int) -> Iterator[list[tuple[str, int]]]:
    """Every (sku, qty) in SKU order, fetched a chunk at a time by key so the lock is never held long."""
    last = ""
    while True:
        with store.reading() as conn:
            rows = conn.execute(
                "SELECT sku, qty FROM variants WHERE sku > ? ORDER BY sku LIMIT ?", (last, chunk_rows)
            ).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]
