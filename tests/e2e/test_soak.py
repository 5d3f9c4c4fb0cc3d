"""The soak's short run: a minute of the whole system under load and every kind of fault loses and doubles nothing.

`python -m bench.soak` runs as an operator runs it (its own database, vhost and processes); its
JSON line is the verdict, set against the ERP's own records.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAULT_KINDS = {"kill:ingress", "kill:api", "kill:catalog", "kill:inventory", "kill:media", "kill:orders",
               "kill:reconcile", "broker:close_connections", "database:terminate_backends",
               "erp:down", "erp:5xx", "erp:hang", "erp:lost"}


def test_a_minute_of_load_and_faults_loses_and_doubles_nothing(tmp_path):
    # given the whole system for 60 s, ERP events and orders coming in, and a fault every second or so
    finished = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--duration", "60", "--events-per-s", "50", "--orders-per-s", "5",
         "--fault-every", "1", "--skus", "100", "--log-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    figures = json.loads(finished.stdout.strip().splitlines()[-1])

    # then every kind of fault struck, and the system drained once they stopped
    assert set(figures["faults"]) == FAULT_KINDS, figures["faults"]
    assert figures["fault_failures"] == []
    assert figures["drained"], {key: figures[key] for key in (
        "drain_s", "outstanding_after_drain", "unplanned_restarts", "failed_starts")}
    # and every webhook was answered 202 and applied once: the shop's figure of every SKU is the ERP's
    assert figures["webhooks"]["sent"] > 1000
    assert (figures["webhooks"]["not_answered_202"], figures["webhooks"]["not_applied"],
            figures["webhooks"]["applied_twice"]) == (0, 0, 0), figures["webhooks"]
    assert (figures["stock"]["skus_differing"], figures["stock"]["prices_differing"]) == (0, 0), figures["stock"]
    # and every order placed is in the ERP exactly once, or rejected with its reason
    orders = figures["orders"]
    assert orders["placed"] > 100
    assert orders["in_erp"] + orders["rejected"] == orders["placed"], orders
    assert (orders["lost"], orders["in_erp_twice"], orders["in_erp_and_rejected"], orders["rejected_without_reason"],
            orders["unsettled"], orders["not_placed_but_in_erp"]) == (0, 0, 0, 0, 0, 0), orders
    # and the ERP's stock is its start plus receipts less sales and orders: no order taken twice
    assert figures["erp_ledger"] == {"checked": True, "off": 0, "examples": {}}
    # and no hold is left that the rules do not explain, nothing parked, `available` never negative
    assert figures["unexplained_holds"] == 0, figures["unexplained_hold_examples"]
    assert figures["parked"] == {}
    assert figures["storefront"]["samples"] > 0 and figures["storefront"].get("negative_available", 0) == 0
    assert (figures["lost"], figures["doubled"], figures["ok"]) == (0, 0, True)
