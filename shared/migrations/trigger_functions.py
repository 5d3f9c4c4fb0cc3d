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


def _release_counted(which: str, stock: str = "stock_levels s", at: str = "now()") -> str:
    """The one home of the comparison: a hold ends once a figure stamped at or after the ERP's receipt
    mark of its order is applied (the body of release_counted_holds, whose revisions follow), for the
    holds `which` selects, with the figures read from `stock`, stamped `at`."""
    return f"""\
UPDATE stock_holds h
   SET released_at = {at}, release_reason = 'erp_figure'
  FROM orders o, {stock}
 WHERE h.order_id = o.order_id AND s.sku = h.sku
   AND h.released_at IS NULL
   AND {which}
   AND o.erp_received_at IS NOT NULL
   AND s.erp_as_of >= o.erp_received_at"""


_RELEASE_COUNTED = _release_counted("(p_sku IS NULL OR h.sku = p_sku)\n   AND (p_order_id IS NULL OR h.order_id = p_order_id)")
_SIGNATURE = "CREATE OR REPLACE FUNCTION release_counted_holds(p_sku text, p_order_id text) RETURNS void"
# 0010: a SQL function. Planned with its parameters unknown, it scanned every hold at each call.
RELEASE_COUNTED_HOLDS_0010 = f"""
        {_SIGNATURE}
        LANGUAGE sql AS $$
{indent(_RELEASE_COUNTED, " " * 12)}
        $$
        """
# 0013: the same statement in PL/pgSQL, planned at each call with the key it is given (a custom
# plan): the `p IS NULL` tests fold away and the key's index is used (ix_stock_holds_order_id or
# ix_stock_holds_sku_open). PL/pgSQL's own choice would move to a generic plan after five calls, and
# one made while the tables are small scans every open hold.
RELEASE_COUNTED_HOLDS_0013 = f"""
{_SIGNATURE}
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
BEGIN
{indent(_RELEASE_COUNTED, " " * 4)};
END;
$$
"""
# The triggers of 0010 (release_counted_holds).
FIGURE_RELEASES_COUNTED_0010 = "PERFORM release_counted_holds(NEW.sku, NULL);"
RECEIPT_RELEASES_COUNTED_0010 = "PERFORM release_counted_holds(NULL, NEW.order_id);"
# 0012: the same release, called only for a SKU with an open hold.
FIGURE_RELEASES_COUNTED_IF_HELD_0012 = """
IF EXISTS (SELECT 1 FROM stock_holds WHERE sku = NEW.sku AND released_at IS NULL) THEN
    PERFORM release_counted_holds(NEW.sku, NULL);
END IF;
"""

# 0015: a receipt and a figure of a held SKU written at once each read the other as it was before
# its commit, and neither ended the hold (it then waited for its grace period). A receipt's release
# now first shares the row locks of its held SKUs' stock rows, in SKU order (the stock writers'
# order), and releases in a later statement. A figure being written holds its row: the receipt
# waits for its commit, then sees it. A figure written later waits for the receipt's commit, and
# its own release sees the mark. Not covered: a SKU's very first figure, inserted meanwhile (no row
# to lock yet); its hold ends with the next figure or the grace period. Advisory locks would cover
# it, but a figure writer would then take one per held SKU: thousands in a sweep after an outage.
RELEASE_COUNTED_HOLDS_0015 = f"""
{_SIGNATURE}
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    IF p_order_id IS NOT NULL THEN
        PERFORM 1 FROM stock_levels
          WHERE sku IN (SELECT sku FROM stock_holds WHERE order_id = p_order_id AND released_at IS NULL)
          ORDER BY sku FOR SHARE;
    END IF;
{indent(_RELEASE_COUNTED, " " * 4)};
END;
$$
"""

# 0016: the same locks, in the release's own statement. 0015's lock was a statement of its own,
# planned at every call: about 0.35 ms more of PostgreSQL's CPU for every pushed order, a third of
# its share (bench.orders, paired runs), where this costs what 0013's release did. The release reads
# the figures from the rows it locked: a figure committed while it waited is the version it locks
# and reads. The figure's trigger calls with a SKU and the receipt's with an order: a branch each.
# Still a custom plan at each call: a generic one made while the tables are small scans every hold
# for as long as the connection lives (8 ms an order in bench.orders).
_HELD_STOCK_LOCKED = """\
WITH s AS MATERIALIZED (
    SELECT sku, erp_as_of FROM stock_levels
     WHERE sku IN (SELECT sku FROM stock_holds WHERE order_id = p_order_id AND released_at IS NULL)
     ORDER BY sku FOR SHARE)
"""
RELEASE_COUNTED_HOLDS_0016 = f"""
{_SIGNATURE}
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    IF p_order_id IS NOT NULL THEN
{indent(_HELD_STOCK_LOCKED + _release_counted("h.order_id = p_order_id", stock="s"), " " * 8)};
    ELSE
{indent(_release_counted("h.sku = p_sku"), " " * 8)};
    END IF;
END;
$$
"""


# 0018: 0016's release, stamped when it happens. now() is its transaction's start: an order's push
# records the ERP's answer in the transaction that locked the order before the call, so a release
# read as happening before the first attempt, by as long as the ERP took to answer.
RELEASE_COUNTED_HOLDS_0018 = f"""
{_SIGNATURE}
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    IF p_order_id IS NOT NULL THEN
{indent(_HELD_STOCK_LOCKED + _release_counted("h.order_id = p_order_id", stock="s", at="clock_timestamp()"), " " * 8)};
    ELSE
{indent(_release_counted("h.sku = p_sku", at="clock_timestamp()"), " " * 8)};
    END IF;
END;
$$
"""


def trigger_function(name: str, body: str) -> str:
    """`CREATE OR REPLACE FUNCTION name()` returning trigger, in PL/pgSQL, running `body` then `RETURN NULL`."""
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n"
            f"{indent(body.strip(), '    ')}\n    RETURN NULL;\nEND;\n$$")
