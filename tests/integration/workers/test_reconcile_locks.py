"""The sweep locks the stock rows it corrects in SKU order, as every stock writer does, so it never deadlocks with one."""
from __future__ import annotations

import threading

from sqlalchemy import text

from erp_sync.workers import reconcile
from erp_sync.workers.reconcile import run_sweep
from erp_sync.workers.reconcile_correct import apply_changes
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


def test_figures_written_between_the_comparison_and_the_lock_are_decided_again(erp, sweep_settings, committed_session,
                                                                               db_engine, monkeypatch):
    # given 200 SKUs in drift, and webhooks that commit after the sweep compared and before it locks:
    # a figure newer than the snapshot for one SKU, one stamped in the second the snapshot began for
    # another (the ERP may have read its row before that sale), the snapshot's own figure (stamped
    # before it) for a third
    seed_levels(committed_session, {sku: 5 for sku in SKUS})
    url = erp({sku: 7 for sku in SKUS})
    newer, same_second, right = SKUS[10], SKUS[15], SKUS[20]

    def webhooks_then_apply(conn, run_id, taken, read_until):
        with db_engine.begin() as webhook:
            webhook.execute(text("UPDATE stock_levels SET erp_quantity = 42, erp_as_of = now() + interval '1 hour' "
                                 "WHERE sku = :sku"), {"sku": newer})
            webhook.execute(text("UPDATE stock_levels SET erp_quantity = 6, erp_as_of = :taken WHERE sku = :sku"),
                            {"sku": same_second, "taken": taken})
            webhook.execute(text("UPDATE stock_levels SET erp_quantity = 7 WHERE sku = :sku"), {"sku": right})
        return apply_changes(conn, run_id, taken, read_until)

    monkeypatch.setattr(reconcile, "apply_changes", webhooks_then_apply)

    # when the sweep runs
    summary = run_sweep(sweep_settings(url))

    # then the newer figures stay, the right one is left alone, the rest are corrected, and the
    # counts say so: each mismatch is corrected or kept
    assert levels(committed_session) == {sku: 7 for sku in SKUS} | {newer: 42, same_second: 6}
    assert (summary.mismatched, summary.corrected, summary.newer_kept) == (199, 197, 2)
