"""Catalog seeds: a JSON catalog file, or groups of variants generated inside SQLite."""
from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

from erp_sync.sandbox_erp.catalog import Group

_PRODUCTS = (
    ("Smartphone", '["Electronics", "Smartphones"]', "85171300", "Storage", ("64GB", "128GB", "256GB", "512GB")),
    ("Laptop", '["Electronics", "Computers", "Laptops"]', "84713010", "Memory", ("8GB", "16GB", "32GB")),
    ("Headphones", '["Electronics", "Audio"]', "85183000", "Style", ("Over-Ear", "On-Ear", "In-Ear")),
    ("Running Shoe", '["Apparel", "Footwear", "Sports"]', "64041100", "Size", ("7", "8", "9", "10", "11")),
    ("Cotton T-Shirt", '["Apparel", "Men", "T-Shirts"]', "61091000", "Size", ("S", "M", "L", "XL")),
    ("Backpack", '["Bags", "Travel"]', "42029200", "Capacity", ("20L", "30L", "40L")),
    ("Coffee Maker", '["Home", "Kitchen", "Appliances"]', "85167100", "Capacity", ("1L", "1.5L")),
    ("Desk Lamp", '["Home", "Lighting"]', "94052000", "Finish", ("Matte", "Gloss", "Brushed")),
)
_BRANDS = ("Aurora", "Nimbus", "Vertex", "Solace", "Kestrel", "Orion", "Lumen", "Zephyr", "Atlas", "Juniper")
_LINES = ("One", "Pro", "Air", "Max", "Lite", "Plus", "Neo", "Prime")
_COLORS = ("Black", "White", "Blue", "Red", "Green", "Grey", "Silver", "Gold", "Navy", "Olive")

# Generation runs as SQL so a million rows cost seconds, not the minutes Python objects would.
# h(x) is a multiplicative hash: deterministic per seed, spread enough to look random.
_GENERATE = """
WITH RECURSIVE
  g(n) AS (SELECT :start UNION ALL SELECT n + 1 FROM g WHERE n < :start + :groups - 1),
  v(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM v WHERE i < :variants),
  named AS (
    SELECT n, p.kind, p.categories, p.hsn, p.axis, p.axis_values, b.word AS brand,
           b.word || ' ' || p.kind || ' ' || l.word || ' ' || (n % 97 + 1) AS name,
           499 + ((n * 2654435761 + :seed) % 4294967296) % 199500 AS base_cents
    FROM g
    JOIN seed_products p ON p.i = n % :products
    JOIN seed_brands b ON b.i = ((n * 40503 + :seed) % 65536) % :brands
    JOIN seed_lines l ON l.i = ((n * 69069 + :seed) % 65536) % :lines
  )
"""
_INSERT_GROUPS = _GENERATE + """
INSERT OR REPLACE INTO product_groups (group_id, group_name, description, categories, tax_hsn, is_active)
SELECT printf('PG-%07d', n), name, '<p>The ' || name || ' by ' || brand || '.</p>',
       json_insert(categories, '$[#]', brand), hsn, 1
FROM named
"""
_INSERT_VARIANTS = _GENERATE + """
, priced AS (
    SELECT named.*, v.i, c.word AS color, json_extract(axis_values, '$[' || ((v.i - 1) / :colors % json_array_length(axis_values)) || ']') AS second,
           base_cents + (v.i - 1) * 1000 AS cents, printf('SKU-%07d-%02d', n, v.i) AS sku
    FROM named CROSS JOIN v JOIN seed_colors c ON c.i = (v.i - 1) % :colors
)
INSERT OR REPLACE INTO variants (sku, group_id, display_name, price, mrp, qty, attributes, media)
SELECT sku, printf('PG-%07d', n), name || ' ' || second || ' ' || color,
       printf('%d.%02d', cents / 100, cents % 100),
       printf('%d.%02d', (cents * 115 + 50) / 100 / 100, (cents * 115 + 50) / 100 % 100),
       ((n * 2246822519 + i * 3266489917 + :seed) % 4294967296) % 200,
       json_object('Color', color, axis, second), NULL
FROM priced
"""


def _word_table(conn: sqlite3.Connection, name: str, words: tuple[str, ...]) -> None:
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} (i INTEGER PRIMARY KEY, word TEXT NOT NULL)")
    conn.execute(f"DELETE FROM {name}")
    conn.executemany(f"INSERT INTO {name} VALUES (?, ?)", enumerate(words))


def _lookup_tables(conn: sqlite3.Connection) -> None:
    _word_table(conn, "seed_brands", _BRANDS)
    _word_table(conn, "seed_lines", _LINES)
    _word_table(conn, "seed_colors", _COLORS)
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS seed_products"
        " (i INTEGER PRIMARY KEY, kind TEXT, categories TEXT, hsn TEXT, axis TEXT, axis_values TEXT)"
    )
    conn.execute("DELETE FROM seed_products")
    conn.executemany(
        "INSERT INTO seed_products VALUES (?, ?, ?, ?, ?, ?)",
        [(i, kind, cats, hsn, axis, json.dumps(values)) for i, (kind, cats, hsn, axis, values) in enumerate(_PRODUCTS)],
    )


def generate_into(conn: sqlite3.Connection, groups: int, variants: int, random_seed: int = 0, start: int = 1) -> int:
    """Write groups PG-<n> (n from start) of variants SKU-<n>-<v>; returns how many variants."""
    if groups <= 0 or variants <= 0:
        return 0
    _lookup_tables(conn)
    params = {
        "start": start, "groups": groups, "variants": variants, "seed": random_seed % 65536,
        "products": len(_PRODUCTS), "brands": len(_BRANDS), "lines": len(_LINES), "colors": len(_COLORS),
    }
    conn.execute(_INSERT_GROUPS, params)
    conn.execute(_INSERT_VARIANTS, params)
    return groups * variants


def next_group_number(conn: sqlite3.Connection) -> int:
    """The first generated group number not yet used."""
    row = conn.execute("SELECT max(group_id) FROM product_groups WHERE group_id LIKE 'PG-_______'").fetchone()
    return int(row[0][3:]) + 1 if row and row[0] and row[0][3:].isdigit() else 1


def load_catalog_file(path: Path) -> list[Group]:
    """Groups from a JSON file: a list of catalog.update `data` objects (or whole events)."""
    raw = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    items = raw if isinstance(raw, list) else [raw]
    return [item["data"] if "data" in item else item for item in items]


def seed_store(conn: sqlite3.Connection, catalog_file: Path | None, groups: int, variants: int, random_seed: int) -> int:
    """Fill an empty store from the catalog file and/or generated groups; returns variants written."""
    from erp_sync.sandbox_erp.catalog import insert_groups, variant_count

    if variant_count(conn) > 0:
        return 0  # a file kept from an earlier run keeps its state
    written = insert_groups(conn, load_catalog_file(catalog_file)) if catalog_file else 0
    return written + generate_into(conn, groups, variants, random_seed, start=next_group_number(conn))
