"""The ERP's business: stock moves, orders taken from the shop, catalog changes, each with its webhooks."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from erp_sync.sandbox_erp import catalog, outbox, seed
from erp_sync.sandbox_erp.catalog import Group
from erp_sync.sandbox_erp.config import SandboxConfig
from erp_sync.sandbox_erp.delivery import Dispatcher
from erp_sync.sandbox_erp.errors import ApiError
from erp_sync.sandbox_erp.events import Event, catalog_update, inventory_change, utc_now
from erp_sync.sandbox_erp.payloads import InventoryAdjust, OrderImport
from erp_sync.sandbox_erp.store import Store


class Ledger:
    """Every state change of the sandbox ERP, each in one transaction with the events it fires."""

    def __init__(self, store: Store, config: SandboxConfig, dispatcher: Dispatcher | None = None) -> None:
        self.store = store
        self.config = config
        self.dispatcher = dispatcher
        self.public_url = (config.public_url or "http://127.0.0.1").rstrip("/")

    def _emit(self, conn: sqlite3.Connection, events: Iterable[Event]) -> None:
        deliver = bool(self.config.webhook_url and self.config.webhook_secret)
        now = time.time()
        for event in events:
            outbox.enqueue(conn, event, now, deliver)

    def _woken(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def take_order(self, order: OrderImport, idempotency_key: str | None) -> dict[str, Any]:
        """Option A: record the order and deduct its lines."""
        lines = [(line.sku, -line.quantity) for line in order.line_items]
        return self._take("order", order.order_id, idempotency_key, order.model_dump_json(), lines)

    def take_adjustment(self, adjust: InventoryAdjust, idempotency_key: str | None) -> dict[str, Any]:
        """Option B: record the reference and apply its changes."""
        lines = [(item.sku, item.quantity_change) for item in adjust.adjustments]
        return self._take("adjust", adjust.reference_id, idempotency_key, adjust.model_dump_json(), lines)

    def _take(self, kind: str, order_id: str, key: str | None, body: str,
              lines: list[tuple[str, int]]) -> dict[str, Any]:
        with self.store.transaction() as conn:
            # Either name of the order (its id or its Idempotency-Key) finds it.
            names = sorted({order_id, key or order_id})
            marks = ",".join("?" * len(names))
            taken = conn.execute(
                f"SELECT order_id FROM orders WHERE order_id IN ({marks}) OR idempotency_key IN ({marks})", names * 2
            ).fetchone()
            if taken is not None:
                raise ApiError(409, f"order {taken[0]} was already received; nothing deducted")
            new = self._apply(conn, lines)
            conn.execute(
                "INSERT INTO orders (order_id, idempotency_key, kind, body, received_at) VALUES (?, ?, ?, ?, ?)",
                (order_id, key, kind, body, utc_now()),
            )
            if self.config.webhooks_for_api_orders:
                precision, reference = self.config.timestamp_precision, order_id if self.config.reference_ids else None
                self._emit(conn, (inventory_change(sku, qty, "ONLINE_ORDER", precision=precision, reference_id=reference)
                                  for sku, qty in new.items()))
        self._woken()
        return {"status": "accepted", "order_id": order_id, "stock": [{"sku": s, "qty": q} for s, q in new.items()]}

    def _apply(self, conn: sqlite3.Connection, lines: list[tuple[str, int]]) -> dict[str, int]:
        current = catalog.quantities(conn, (sku for sku, _ in lines))
        unknown = sorted({sku for sku, _ in lines if sku not in current})
        if unknown:
            raise ApiError(400, "unknown sku", [{"sku": sku} for sku in unknown])
        new = dict(current)
        for sku, change in lines:
            new[sku] += change
        short = sorted(sku for sku, qty in new.items() if qty < 0)
        if short and not self.config.allow_oversell:
            raise ApiError(400, "insufficient stock", [{"sku": s, "available": current[s]} for s in short])
        for sku, qty in new.items():
            catalog.set_quantity(conn, sku, qty)
        return new

    def move_stock(self, sku: str, change: int | None, reason: str,
                   new_quantity: int | None = None, location_id: str | None = "WH-MAIN") -> int:
        """An ERP-side stock move (sale, receipt, adjustment); fires inventory.change with the new total."""
        with self.store.transaction() as conn:
            current = catalog.quantities(conn, [sku])
            if sku not in current:
                raise ApiError(404, f"unknown sku {sku}")
            qty = new_quantity if new_quantity is not None else current[sku] + (change or 0)
            if qty < 0 and not self.config.allow_oversell:
                raise ApiError(400, "insufficient stock", [{"sku": sku, "available": current[sku]}])
            catalog.set_quantity(conn, sku, qty)
            self._emit(conn, [inventory_change(sku, qty, reason, location_id, self.config.timestamp_precision)])
        self._woken()
        return qty

    def change_price(self, sku: str, price: Any, mrp: Any | None) -> Group:
        """A price change; fires catalog.update with the whole group."""
        with self.store.transaction() as conn:
            group_id = catalog.set_price(conn, sku, price, mrp)
            if group_id is None:
                raise ApiError(404, f"unknown sku {sku}")
            group = catalog.load_group(conn, group_id, self.public_url)
            assert group is not None
            self._emit(conn, [catalog_update(group)])
        self._woken()
        return group

    def add_product(self, group: Group | None) -> Group:
        """A new product: the given group, or a generated one; fires catalog.update."""
        with self.store.transaction() as conn:
            if group is None:
                number = seed.next_group_number(conn)
                seed.generate_into(conn, 1, self.config.variants_per_group, self.config.random_seed, start=number)
                group_id = f"PG-{number:07d}"
            else:
                catalog.insert_groups(conn, [group])
                group_id = str(group["product_group_id"])
            loaded = catalog.load_group(conn, group_id, self.public_url)
            assert loaded is not None
            self._emit(conn, [catalog_update(loaded)])
        self._woken()
        return loaded

    def publish_catalog(self) -> dict[str, int]:
        """Fire catalog.update for every group, as an ERP's initial load does; returns the counts."""
        with self.store.transaction() as conn:
            ids = [str(row[0]) for row in conn.execute("SELECT group_id FROM product_groups ORDER BY group_id")]
            groups = [group for group_id in ids if (group := catalog.load_group(conn, group_id, self.public_url))]
            self._emit(conn, (catalog_update(group) for group in groups))
        self._woken()
        return {"groups": len(groups), "variants": sum(len(group["variants"]) for group in groups)}

    def group(self, group_id: str) -> Group | None:
        """A group as it would be sent."""
        with self.store.reading() as conn:
            return catalog.load_group(conn, group_id, self.public_url)

    def stock(self, sku: str) -> int | None:
        """One SKU's stock, None when unknown."""
        with self.store.reading() as conn:
            return catalog.quantities(conn, [sku]).get(sku)

    def orders(self) -> list[dict[str, Any]]:
        """Every order and adjustment received from the shop, oldest first."""
        with self.store.reading() as conn:
            rows = conn.execute("SELECT order_id, idempotency_key, kind, body, received_at FROM orders ORDER BY rowid")
            return [
                {"order_id": r[0], "idempotency_key": r[1], "kind": r[2], "body": json.loads(r[3]), "received_at": r[4]}
                for r in rows.fetchall()
            ]
