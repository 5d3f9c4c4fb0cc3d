"""The bodies of the hold-release trigger functions, one constant per revision that wrote one.

A migration that replaces a function, and its downgrade that puts the previous body back, both name
the revision's constant instead of copying its SQL (as alembic's "replaceable objects" recipe does).
A constant, once released, never changes: it is what that revision put in the database.
"""
from __future__ import annotations

from textwrap import indent

# 0002: a figure strictly newer than the ERP's acknowledgement (synced_at) ends the hold.
FIGURE_RELEASES_BY_SYNCED_AT_0002 = """
UPDATE stock_holds
   SET released_at = now(), release_reason = 'erp_figure'
 WHERE sku = NEW.sku
   AND released_at IS NULL
   AND order_id IN (
       SELECT order_id FROM orders
        WHERE synced_at IS NOT NULL AND synced_at < NEW.erp_as_of
   );
"""
# 0010: a figure at or after the ERP's receipt mark ends the hold (release_counted_holds).
FIGURE_RELEASES_COUNTED_0010 = "PERFORM release_counted_holds(NEW.sku, NULL);"
RECEIPT_RELEASES_COUNTED_0010 = "PERFORM release_counted_holds(NULL, NEW.order_id);"
# 0012: the same release, called only for a SKU with an open hold.
FIGURE_RELEASES_COUNTED_IF_HELD_0012 = """
IF EXISTS (SELECT 1 FROM stock_holds WHERE sku = NEW.sku AND released_at IS NULL) THEN
    PERFORM release_counted_holds(NEW.sku, NULL);
END IF;
"""


def trigger_function(name: str, body: str) -> str:
    """`CREATE OR REPLACE FUNCTION name()` returning trigger, in PL/pgSQL, running `body` then `RETURN NULL`."""
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n"
            f"{indent(body.strip(), '    ')}\n    RETURN NULL;\nEND;\n$$")
