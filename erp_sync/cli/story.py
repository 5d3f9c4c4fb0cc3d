"""`erp-sync dev --story`: the spec's story played live against the dev instance, one line a step.

Each step acts as the ERP, the shop or the operator would (the sandbox's admin API, a placed order
on RabbitMQ, `erp-sync orders retry`, `erp-sync reconcile --now`) and checks what the storefront
API shows. A step waits for its outcome up to STEP_TIMEOUT_S; the first that fails ends the story.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import requests

from erp_sync.cli.dev_env import Ports
from erp_sync.cli.dev_processes import Output
from erp_sync.cli.exits import EXIT_FAILURE, EXIT_OK
from erp_sync.shared.errors import ErpSyncError
from erp_sync.shared.orders import publish_order
from erp_sync.shared.publisher import ConfirmingPublisher

STEP_TIMEOUT_S = 60.0
T = TypeVar("T")


class StepFailed(Exception):
    """A step's outcome did not come: the message says what was expected and what was seen."""


class Story:
    """The dev instance as the story's actors see it."""

    def __init__(self, env: Mapping[str, str], ports: Ports, should_stop: Callable[[], bool]) -> None:
        self.env = env
        self.should_stop = should_stop
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {env['STOREFRONT_API_TOKEN'].split(',')[0]}"
        self.api_url = f"http://127.0.0.1:{ports.api}/api/v1"
        self.erp = requests.Session()
        admin = env.get("SANDBOX_ERP_ADMIN_TOKEN") or env.get("SANDBOX_ERP_API_TOKEN") or env["ERP_API_TOKEN"]
        self.erp.headers["Authorization"] = f"Bearer {admin}"
        self.erp_url = env["SANDBOX_ERP_URL"]
        self.erp_token = env.get("SANDBOX_ERP_API_TOKEN") or env["ERP_API_TOKEN"]
        self.run_id = datetime.now(timezone.utc).strftime("%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.sku = ""

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float = STEP_TIMEOUT_S) -> T:
        """Poll probe until it returns a value; StepFailed naming `what` (and the last error) otherwise."""
        deadline = time.monotonic() + timeout
        last = "nothing yet"
        while time.monotonic() < deadline and not self.should_stop():
            try:
                found = probe()
            except (requests.RequestException, ValueError, KeyError) as exc:
                found, last = None, f"{type(exc).__name__}: {exc}"
            if found is not None:
                return found
            time.sleep(0.2)
        raise StepFailed(f"{what} did not happen within {timeout:.0f} s (last: {last})")

    def inventory(self, sku: str) -> dict[str, Any]:
        answer = self.api.get(f"{self.api_url}/inventory/{sku}", timeout=5)
        answer.raise_for_status()
        return dict(answer.json())

    def shows(self, sku: str, erp_quantity: int, reserved: int) -> dict[str, Any] | None:
        """The storefront's figures for sku when they are these, else None."""
        shown = self.inventory(sku)
        return shown if (shown["erp_quantity"], shown["reserved"]) == (erp_quantity, reserved) else None

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = self.erp.request(method, f"{self.erp_url}/admin/{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def place_order(self, order_id: str, sku: str) -> None:
        # Generous: a loaded laptop is no broker outage, and the story is about the ERP's.
        publisher = ConfirmingPublisher(self.env["AMQP_URL"], connect_timeout_s=15, confirm_timeout_s=15)
        try:
            publish_order(publisher, {"order_id": order_id, "order_date": datetime.now(timezone.utc).isoformat(),
                                      "customer_ref": "CUST-STORY", "line_items": [
                                          {"sku": sku, "quantity": 1, "unit_price": "10.00"}]})
        finally:
            publisher.close()

    def order_status(self, order_id: str, status: str) -> dict[str, Any] | None:
        answer = self.api.get(f"{self.api_url}/orders/{order_id}", timeout=5)
        return answer.json() if answer.ok and answer.json().get("status") == status else None

    def erp_sync(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """An `erp-sync` command as an operator runs it in a second shell."""
        return subprocess.run([sys.executable, "-m", "erp_sync", *arguments], env=dict(self.env), text=True,
                              capture_output=True, timeout=120, check=False)


def catalog_arrives(story: Story) -> str:
    snapshot = requests.get(f"{story.erp_url}/api/v1/inventory/snapshot?format=json", timeout=30,
                            headers={"Authorization": f"Bearer {story.erp_token}"})
    snapshot.raise_for_status()
    skus = [row["sku"] for row in snapshot.json()]
    story.sku = skus[-1]

    def all_there() -> int | None:
        missing = [sku for sku in skus if story.api.get(f"{story.api_url}/products/{sku}", timeout=5).status_code != 200]
        return None if missing else len(skus)

    found = story.wait(f"the {len(skus)} SKUs of the ERP in the storefront API", all_there)
    media = story.wait(f"{story.sku}'s images downloaded", lambda: _confirmed_media(story))
    return f"{found} of {len(skus)} SKUs of the ERP's catalog in the storefront API; {story.sku}: {media}"


def _confirmed_media(story: Story) -> str | None:
    product = story.api.get(f"{story.api_url}/products/{story.sku}", timeout=5).json()
    states = [item.get("status") or item.get("download_status") for item in product.get("media", [])]
    return f"{len(states)} images confirmed" if states and all(s == "confirmed" for s in states) else None


def in_store_sale(story: Story) -> str:
    story.admin("POST", "adjust", {"sku": story.sku, "new_quantity": 50})
    story.wait(f"{story.sku} at 50 in the storefront API", lambda: story.shows(story.sku, 50, 0))
    sold = story.admin("POST", "sale", {"sku": story.sku, "quantity": 1})
    if sold["qty"] != 49:
        raise StepFailed(f"the ERP counts {sold['qty']} after the sale, not 49")
    shown = story.wait(f"{story.sku} at 49 in the storefront API", lambda: story.shows(story.sku, 49, 0))
    return f"{story.sku} counted 50 at the ERP, sold 1 in store: ERP 49, storefront API erp_quantity " \
           f"{shown['erp_quantity']}, available {shown['available']}"


def online_order(story: Story) -> str:
    order_id = f"ORD-STORY-{story.run_id}-1"
    story.place_order(order_id, story.sku)
    story.wait(f"{order_id} synced", lambda: story.order_status(order_id, "synced"))
    shown = story.wait(f"{order_id}'s hold ended by the ERP's figure 48", lambda: story.shows(story.sku, 48, 0))
    if order_id not in [order["order_id"] for order in story.admin("GET", "orders")]:
        raise StepFailed(f"{order_id} is synced but the ERP did not receive it")
    return f"{order_id} placed, synced, received by the ERP; its hold ended when the ERP's figure arrived:" \
           f" erp_quantity {shown['erp_quantity']}, reserved {shown['reserved']}, available {shown['available']}"


def erp_down(story: Story) -> str:
    order_id = f"ORD-STORY-{story.run_id}-2"
    story.admin("PUT", "faults", {"mode": "down"})
    try:
        story.place_order(order_id, story.sku)
        story.wait(f"{order_id} pending_sync", lambda: story.order_status(order_id, "pending_sync"))
        held = story.inventory(story.sku)
        if (held["reserved"], held["available"]) != (1, 47):
            raise StepFailed(f"while the ERP is down {story.sku} should show reserved 1, available 47: {held}")
    finally:
        story.admin("PUT", "faults", {"mode": "none"})
    retried = story.erp_sync("orders", "retry", order_id)
    if retried.returncode != 0:
        # The orders worker may have pushed it first (its retry interval is short in dev).
        story.wait(f"{order_id} synced", lambda: story.order_status(order_id, "synced"))
    story.wait(f"{order_id} synced after the ERP came back", lambda: story.order_status(order_id, "synced"))
    story.wait(f"{order_id}'s hold ended by the ERP's figure 47", lambda: story.shows(story.sku, 47, 0))
    return f"ERP down: {order_id} waited as pending_sync with 1 unit held (available 47); ERP back," \
           " `erp-sync orders retry` pushed it: synced, ERP 47, hold ended"


def drift_repaired(story: Story) -> str:
    # A figure the ERP never had, signed as the ERP signs: what a lost or wrong webhook leaves behind.
    from erp_sync.sandbox_erp.events import encode, inventory_change, sign

    event = inventory_change(story.sku, 40, "STORY_DRIFT")
    body = encode(event)
    secret = story.env["ERP_WEBHOOK_SECRET"].split(",")[0]
    answer = requests.post(story.env["SANDBOX_ERP_WEBHOOK_URL"], data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-ERP-Signature": sign(secret, body)})
    if answer.status_code != 202:
        raise StepFailed(f"the planted figure was answered {answer.status_code}: {answer.text}")
    story.wait(f"{story.sku} drifted to 40", lambda: story.shows(story.sku, 40, 0))
    time.sleep(1.5)  # the snapshot is taken after the planted figure's second
    swept = story.erp_sync("reconcile", "--now")
    summary = json.loads(swept.stdout) if swept.stdout.strip() else {}
    if swept.returncode != 0 or summary.get("status") != "succeeded" or summary.get("corrected", 0) < 1:
        raise StepFailed(f"reconcile --now exited {swept.returncode}: {swept.stdout.strip()} {swept.stderr.strip()}")
    story.wait(f"{story.sku} back at 47", lambda: story.shows(story.sku, 47, 0))
    return f"{story.sku} planted at 40 (the ERP has 47); `erp-sync reconcile --now`: checked" \
           f" {summary.get('checked')}, mismatched {summary.get('mismatched')}, corrected {summary.get('corrected')};" \
           " the storefront API shows 47 again"


STEPS: list[tuple[str, Callable[[Story], str]]] = [
    ("the catalog arrives", catalog_arrives),
    ("an in-store sale", in_store_sale),
    ("an online order", online_order),
    ("the ERP goes down", erp_down),
    ("drift, and a sweep", drift_repaired),
]


def play(env: Mapping[str, str], ports: Ports, output: Output, should_stop: Callable[[], bool]) -> int:
    """Play every step in order; EXIT_OK when all passed, else EXIT_FAILURE naming the failed step."""
    story = Story(env, ports, should_stop)
    for number, (name, step) in enumerate(STEPS, start=1):
        started = time.monotonic()
        try:
            checked = step(story)
        except (StepFailed, ErpSyncError, requests.RequestException, ValueError, KeyError,
                subprocess.SubprocessError) as exc:
            output.line("story", f"FAIL {number}. {name}: {exc} ({time.monotonic() - started:.1f} s)")
            output.line("story", f"the story failed at step {number}: {name}")
            return EXIT_FAILURE
        output.line("story", f"ok   {number}. {name}: {checked} ({time.monotonic() - started:.1f} s)")
    output.line("story", f"all {len(STEPS)} steps passed")
    return EXIT_OK
