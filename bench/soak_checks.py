"""The soak's verdict once faults stopped and queues drained: what the ERP holds set against what the shop holds.

The sandbox ERP's SQLite file is read directly (its store, its outbox of webhooks); the shop's
PostgreSQL database through SQL; the broker's parking queues by their depth.
"""
from __future__ import annotations

import json
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench import queues
from erp_sync.shared.topology import WORK_QUEUES

SETTLED = ("synced", "rejected")
EXAMPLES = 5
# An open hold of a settled order is explained only while it waits for its figure: the order is
# synced and no figure stamped at or after the ERP's receipt mark has come (then
# HOLD_GRACE_PERIOD_S ends it). A 409 for an order whose first answer was lost marks the receipt
# late, after the figure the ERP fired at the real one. A rejected order holds nothing. The soak
# runs without ERP_NAMES_ORDERS: with it, a synced order has no mark and this query would count its
# hold, awaiting its named figure, as unexplained.
_OPEN_HOLDS = f"""
SELECT count(*) FILTER (WHERE NOT awaiting), count(*) FILTER (WHERE awaiting),
       coalesce((array_agg(example ORDER BY example) FILTER (WHERE NOT awaiting))[1:{EXAMPLES}], '{{}}') FROM (
    SELECT o.status = 'synced' AND o.erp_received_at IS NOT NULL
           AND (l.erp_as_of IS NULL OR l.erp_as_of < o.erp_received_at) AS awaiting,
           concat_ws(' ', h.order_id, h.sku, o.status, 'received', o.erp_received_at, 'figure', l.erp_as_of) AS example
    FROM stock_holds h JOIN orders o USING (order_id) LEFT JOIN stock_levels l ON l.sku = h.sku
    WHERE h.released_at IS NULL AND o.status IN ('synced', 'rejected')
) AS open_holds
"""


def erp_state(erp_db: Path) -> dict[str, Any]:
    """What the ERP holds: stock and price per SKU, its orders, its outbox of webhooks."""
    connection = sqlite3.connect(f"file:{erp_db}?mode=ro", uri=True, timeout=30)
    try:
        variants = connection.execute("SELECT sku, qty, price FROM variants").fetchall()
        orders = connection.execute("SELECT order_id, body FROM orders").fetchall()
        outbox = connection.execute("SELECT event_id, event_type, status, last_status FROM outbox").fetchall()
    finally:
        connection.close()
    return {"stock": {sku: int(qty) for sku, qty, _ in variants},
            "price": {sku: Decimal(price) for sku, _, price in variants},
            "orders": [(order_id, json.loads(body)) for order_id, body in orders],
            "outbox": outbox}


def webhooks_pending(erp_db: Path) -> int:
    connection = sqlite3.connect(f"file:{erp_db}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0])
    finally:
        connection.close()


def _rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql)).all())


def outstanding(engine: Engine, erp_db: Path, amqp_url: str) -> dict[str, Any]:
    """What the system still has to do: webhooks the ERP has not delivered, messages waiting, orders unsettled."""
    left: dict[str, Any] = {}
    if pending := webhooks_pending(erp_db):
        left["webhooks_pending"] = pending
    if waiting := {queue.name: n for queue in WORK_QUEUES.values() if (n := queues.depth(amqp_url, queue.name))}:
        left["messages_waiting"] = waiting
    if unsettled := dict(_rows(engine, "SELECT status, count(*) FROM orders "
                                       "WHERE status NOT IN ('synced', 'rejected') GROUP BY status")):
        left["orders_unsettled"] = unsettled
    return left


def verdict(engine: Engine, erp_db: Path, amqp_url: str, placed: set[str], erp_moves: Counter[str] | None,
            initial_stock: dict[str, int]) -> dict[str, Any]:
    """Every figure of the soak's check; `lost` and `doubled` sum up what must be zero."""
    erp = erp_state(erp_db)
    events = _events(engine, erp["outbox"])
    stock = _stock(engine, erp)
    orders = _orders(engine, erp, placed)
    ledger = _erp_ledger(erp, erp_moves, initial_stock)
    parked = {name: depth for name, queue in WORK_QUEUES.items()
              if (depth := queues.depth(amqp_url, queue.parking_queue))}
    unexplained, awaiting, unexplained_examples = _rows(engine, _OPEN_HOLDS)[0]
    lost = (events["not_applied"] + events["not_answered_202"] + stock["skus_differing"] + stock["prices_differing"]
            + orders["lost"])
    doubled = events["applied_twice"] + orders["in_erp_twice"] + orders["in_erp_and_rejected"] + ledger["off"]
    return {"lost": lost, "doubled": doubled, "webhooks": events, "stock": stock, "orders": orders,
            "erp_ledger": ledger, "unexplained_holds": int(unexplained),
            "unexplained_hold_examples": list(unexplained_examples), "holds_awaiting_grace": int(awaiting),
            "parked": parked}


def _events(engine: Engine, outbox: list[tuple[str, str, str, int | None]]) -> dict[str, Any]:
    processed = {row[0] for row in _rows(engine, "SELECT event_id FROM processed_events")}
    by_type = Counter(event_type for _, event_type, _, _ in outbox)
    not_202 = [event_id for event_id, _, status, last in outbox if status != "delivered" or last != 202]
    not_applied = [event_id for event_id, _, status, _ in outbox if status == "delivered" and event_id not in processed]
    twice = _rows(engine, "SELECT count(*) FROM (SELECT event_id, sku FROM stock_changes WHERE outcome <> 'duplicate' "
                          "GROUP BY event_id, sku HAVING count(*) > 1) AS twice")[0][0]
    return {"sent": len(outbox), "by_type": dict(by_type), "not_answered_202": len(not_202),
            "not_applied": len(not_applied), "applied_twice": int(twice), "examples": (not_202 + not_applied)[:EXAMPLES]}


def _stock(engine: Engine, erp: dict[str, Any]) -> dict[str, Any]:
    shop = {sku: int(qty) for sku, qty in _rows(engine, "SELECT sku, erp_quantity FROM stock_levels")}
    prices = {sku: Decimal(price) for sku, price in _rows(engine, "SELECT sku, price FROM variants")}
    differing = {sku: (qty, shop.get(sku)) for sku, qty in erp["stock"].items() if shop.get(sku) != qty}
    price_differing = {sku: (str(p), str(prices.get(sku))) for sku, p in erp["price"].items() if prices.get(sku) != p}
    return {"skus": len(erp["stock"]), "skus_differing": len(differing), "prices_differing": len(price_differing),
            "examples": dict(list(differing.items())[:EXAMPLES]) | dict(list(price_differing.items())[:EXAMPLES])}


def _orders(engine: Engine, erp: dict[str, Any], placed: set[str]) -> dict[str, Any]:
    in_erp = Counter(order_id for order_id, _ in erp["orders"])
    shop = {order_id: (status, reason) for order_id, status, reason in
            _rows(engine, "SELECT order_id, status, last_error FROM orders")}
    rejected = {order_id for order_id, (status, _) in shop.items() if status == "rejected"}
    lost = sorted(o for o in placed if o not in in_erp and o not in rejected)
    reasons = Counter(_reason(shop[o][1]) for o in rejected)
    return {
        "placed": len(placed), "in_erp": len(in_erp), "rejected": len(rejected), "rejected_by_reason": dict(reasons),
        "rejected_without_reason": sum(1 for o in rejected if not shop[o][1]),
        "oversells": sum(n for reason, n in reasons.items() if "insufficient stock" in reason),
        "unsettled": sum(1 for o in placed if shop.get(o, ("missing", None))[0] not in SETTLED),
        "lost": len(lost), "in_erp_twice": sum(1 for n in in_erp.values() if n > 1),
        "in_erp_and_rejected": len(rejected & set(in_erp)), "not_placed_but_in_erp": len(set(in_erp) - placed),
        "examples": lost[:EXAMPLES],
    }


def _reason(text_: str | None) -> str:
    if not text_:
        return "none"
    return "insufficient stock" if "insufficient stock" in text_ else text_[:60]


def _erp_ledger(erp: dict[str, Any], moves: Counter[str] | None, initial: dict[str, int]) -> dict[str, Any]:
    """The ERP's stock against initial + receipts - sales - orders: an order taken twice would show here."""
    if moves is None:
        return {"checked": False, "off": 0}
    ordered: Counter[str] = Counter()
    for _, body in erp["orders"]:
        for line in body.get("line_items", []):
            ordered[line["sku"]] += int(line["quantity"])
    off = {sku: qty for sku, qty in erp["stock"].items()
           if qty != initial.get(sku, 0) + moves[sku] - ordered[sku]}
    return {"checked": True, "off": len(off), "examples": dict(list(off.items())[:EXAMPLES])}
