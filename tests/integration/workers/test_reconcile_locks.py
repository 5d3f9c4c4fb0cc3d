"""The sweep locks the stock rows it corrects in SKU order, as every stock writer does, so it never deadlocks with one."""
from __future__ import annotations

import threading

from sqlalchemy import text

from erp_sync.workers.reconcile import run_sweep
from tests.support.race import blocked_or_done
from tests.support.reconcile import levels, seed_levels
from tests.support.waiting import wait_for

SKUS = [f"LOCK-{n:03d}" for n in range(200)]


def test_a_sweep_and_a_figure_writer_of_two_skus_both_finish(erp, sweep_settings, committed_session, db_engine):
    # given 200 SKUs in drift, listed newest SKU first on both sides (the order a sweep may meet them in)
    seed_levels(committed_session, {sku: 5 for sku in reversed(SKUS)})
    url = erp({sku: 7 for sku in reversed(SKUS)})
    # and a stock writer holding the first SKU's row, as a figure of the first and last SKUs locks them
    with db_engine.connect() as writer:
        writer.execute(text("SET lock_timeout = '20s'"))
        writer.execute(text("SELECT 1 FROM stock_levels WHERE sku = :sku FOR UPDATE"), {"sku": SKUS[0]})
        summaries = []
        sweep = threading.Thread(target=lambda: summaries.append(run_sweep(sweep_settings(url))))
        sweep.start()
        wait_for(lambda: blocked_or_done(db_engine, sweep), timeout=30)

        # when the writer goes on to the last SKU's row while the sweep waits for the first
        writer.execute(text("SELECT 1 FROM stock_levels WHERE sku = :sku FOR UPDATE"), {"sku": SKUS[-1]})
        writer.commit()
        sweep.join(timeout=60)

    # then neither was aborted as a deadlock: the writer got both rows, and the sweep corrected every SKU
    assert [summary.status for summary in summaries] == ["succeeded"], summaries
    assert levels(committed_session) == {sku: 7 for sku in SKUS}


def test_a_held_sweep_compares_without_taking_a_stock_row(erp, sweep_settings, committed_session, db_engine):
    # given every SKU drifted to zero (a broken export, which the change limits hold), and a webhook
    # holding one SKU's row while it applies a figure
    seed_levels(committed_session, {sku: 5 for sku in SKUS})
    url = erp({sku: 0 for sku in SKUS})
    with db_engine.connect() as webhook:
        webhook.execute(text("SELECT 1 FROM stock_levels WHERE sku = :sku FOR UPDATE"), {"sku": SKUS[100]})
        summaries = []
        sweep = threading.Thread(target=lambda: summaries.append(run_sweep(sweep_settings(
            url, reconcile_max_changed_share=0.05, reconcile_max_zeroed_share=0.02))))
        sweep.start()
        wait_for(lambda: blocked_or_done(db_engine, sweep), timeout=30)
        finished_meanwhile = not sweep.is_alive()
        webhook.commit()
        sweep.join(timeout=60)

    # then the sweep was held without waiting for the webhook (a million locked rows would make the
    # ERP's figures wait for seconds, and time out), and changed nothing
    assert finished_meanwhile and [summary.status for summary in summaries] == ["held"]
    assert levels(committed_session) == {sku: 5 for sku in SKUS}
