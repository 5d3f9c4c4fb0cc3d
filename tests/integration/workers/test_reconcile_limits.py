"""The sweep's safety rails against real PostgreSQL and the sandbox ERP: change limits, holds, decisions, dry run."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from erp_sync.shared.models import ReconciliationCorrection, ReconciliationHeldChange, ReconciliationRun
from erp_sync.shared.reconcile_metrics import exposition
from erp_sync.workers.reconcile import LOCK_KEY, run_sweep
from erp_sync.workers.reconcile_summary import SweepSummary
from erp_sync.workers.reconcile_correct import Change
from erp_sync.workers.reconcile_decide import RunNotHeld, approve_run, reject_run
from erp_sync.workers.reconcile_history import show
from erp_sync.workers.stock import StockEvent, apply_stock_events
from erp_sync.workers.stock_rule import Delta, Total
from tests.support.reconcile import levels, seed_levels
from tests.support.waiting import wait_for

SKUS = [f"L-{n:03d}" for n in range(100)]
COMMERCE = dict.fromkeys(SKUS, 10)


def _with(changes: dict[str, int], drop: int = 0) -> dict[str, int]:
    """The ERP's stock: commerce's with `changes`, lacking the last `drop` SKUs."""
    return dict(list((COMMERCE | changes).items())[: len(SKUS) - drop])


def _limits(**shares: float) -> dict[str, float]:
    return {f"reconcile_max_{name}_share": share for name, share in shares.items()}


# Each case passes exactly one limit at its default; the others are off (1).
TRIPS = [
    pytest.param(_with({sku: 11 for sku in SKUS[:6]}), _limits(changed=0.05), "RECONCILE_MAX_CHANGED_SHARE",
                 id="changed"),
    pytest.param(_with({sku: 0 for sku in SKUS[:3]}), _limits(zeroed=0.02), "RECONCILE_MAX_ZEROED_SHARE",
                 id="zeroed"),
    pytest.param(_with({}, drop=3), _limits(missing=0.02), "RECONCILE_MAX_MISSING_SHARE", id="missing"),
]


@pytest.mark.parametrize(("stock", "limits", "setting"), TRIPS)
def test_a_sweep_past_a_limit_is_held_and_writes_nothing(stock, limits, setting, erp, sweep_settings,
                                                          committed_session, caplog):
    # given an ERP export past one limit
    url = erp(stock)
    seed_levels(committed_session, COMMERCE)

    # when a sweep runs
    summary = run_sweep(sweep_settings(url, **limits))

    # then nothing changed, the run is held with its reason, and the held alert alone was raised
    assert levels(committed_session) == COMMERCE
    assert (summary.status, summary.corrected) == ("held", 0)
    assert summary.held_reason is not None and setting in summary.held_reason
    assert summary.as_dict()["status"] == "held"
    alerts = [r.message for r in caplog.records if r.message.startswith("ALERT")]
    assert len(alerts) == 1 and alerts[0].startswith(f"ALERT reconciliation run {summary.run_id} held"), alerts


@pytest.mark.parametrize(("stock", "limits"), [
    (_with({sku: 11 for sku in SKUS[:5]}), _limits(changed=0.05)),
    (_with({sku: 0 for sku in SKUS[:2]}), _limits(zeroed=0.02)),
    (_with({}, drop=2), _limits(missing=0.02)),
    (_with({sku: 0 for sku in SKUS[:50]}, drop=30), _limits(changed=1, zeroed=1, missing=1)),
], ids=["changed", "zeroed", "missing", "all-off"])
def test_a_sweep_at_a_limit_or_with_limits_off_writes(stock, limits, erp, sweep_settings, committed_session):
    url = erp(stock)
    seed_levels(committed_session, COMMERCE)

    summary = run_sweep(sweep_settings(url, **limits))

    assert (summary.status, summary.held_reason) == ("succeeded", None)
    assert levels(committed_session) == COMMERCE | {sku: qty for sku, qty in stock.items()}


def _held(erp, sweep_settings, committed_session, **overrides):
    """A sweep held for zeroing 10 of 100 SKUs; its run id."""
    url = erp(_with({sku: 0 for sku in SKUS[:10]}))
    seed_levels(committed_session, COMMERCE)
    summary = run_sweep(sweep_settings(url, **_limits(zeroed=0.02), **overrides))
    assert summary.status == "held"
    return summary


@pytest.mark.parametrize(("decide", "status", "applied"), [(approve_run, "succeeded", 10), (reject_run, "rejected", 0)],
                         ids=["approve", "reject"])
def test_a_held_run_is_decided_once_approve_applying_its_changes_reject_nothing(
        erp, sweep_settings, committed_session, decide, status, applied):
    # given a held run
    held = _held(erp, sweep_settings, committed_session)
    settings = sweep_settings("http://127.0.0.1:9")

    # when it is decided, then approved (again)
    decided = decide(settings, held.run_id)
    with pytest.raises(RunNotHeld):
        approve_run(settings, held.run_id)

    # then its changes were applied and recorded once (approve), or not at all (reject)
    assert (decided.status, decided.corrected) == (status, applied)
    assert levels(committed_session) == COMMERCE | dict.fromkeys(SKUS[:applied], 0)
    corrections = committed_session.scalar(select(func.count()).select_from(ReconciliationCorrection))
    assert corrections == applied


def test_a_figure_newer_than_the_held_run_still_wins_after_approval(erp, sweep_settings, committed_session):
    # given a held run, then a webhook's figure for one of its SKUs and a sale of another, both
    # stamped after the snapshot
    held = _held(erp, sweep_settings, committed_session)
    later = datetime.now(UTC) + timedelta(seconds=5)
    apply_stock_events(committed_session, [StockEvent("evt_newer_L-000", "L-000", Total(42, later)),
                                           StockEvent("evt_sale_L-001", "L-001", Delta(-1, later))])
    committed_session.commit()

    # when the run is approved
    approved = approve_run(sweep_settings("http://127.0.0.1:9"), held.run_id)

    # then the newer figure stays (and is counted as kept), the sale still counts, the rest takes the
    # snapshot's figure
    assert (approved.corrected, approved.newer_kept, approved.mismatched) == (9, 1, 10)
    assert levels(committed_session) == COMMERCE | dict.fromkeys(SKUS[2:10], 0) | {"L-000": 42, "L-001": -1}


def test_an_approved_run_records_the_figures_it_replaced_as_they_were_then(erp, sweep_settings, committed_session):
    # given a held run, then, before the decision, a sale of one of its SKUs stamped before the
    # snapshot (so the snapshot's figure already counts it) and a figure that is already the snapshot's
    held = _held(erp, sweep_settings, committed_session)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    apply_stock_events(committed_session, [StockEvent("evt_sale_L-000", "L-000", Delta(-2, earlier)),
                                           StockEvent("evt_zero_L-001", "L-001", Total(0, earlier))])
    committed_session.commit()

    # when the run is approved
    approved = approve_run(sweep_settings("http://127.0.0.1:9"), held.run_id)

    # then each correction says what it replaced at the approval, and the SKU already right is left alone
    detail = show(committed_session, held.run_id)
    assert detail is not None and (approved.corrected, approved.newer_kept, approved.mismatched) == (9, 0, 9)
    assert list(detail["corrections"])[:2] == [{"sku": "L-000", "old": 8, "new": 0}, {"sku": "L-002", "old": 10, "new": 0}]


def test_a_held_run_a_later_sweep_overtook_can_be_rejected_not_approved(erp, sweep_settings, committed_session):
    # given a held run, then a later sweep of a whole export that confirmed commerce's figures
    held = _held(erp, sweep_settings, committed_session)
    later = run_sweep(sweep_settings(erp(COMMERCE)))
    assert (later.status, later.mismatched) == ("succeeded", 0)
    settings = sweep_settings("http://127.0.0.1:9")

    # when the held run is approved
    with pytest.raises(RunNotHeld) as refused:
        approve_run(settings, held.run_id)

    # then its older figures are not written over the confirmed ones, and it can still be rejected
    assert str(refused.value) == (
        f"reconciliation run {held.run_id} is older than run {later.run_id} (succeeded), which compared a newer "
        f"snapshot: its changes are out of date; reject it with `erp-sync reconcile --reject {held.run_id}`")
    assert levels(committed_session) == COMMERCE
    assert reject_run(settings, held.run_id).status == "rejected"


def test_show_of_a_held_run_lists_every_change_it_holds(erp, sweep_settings, committed_session):
    # given a run held for zeroing 10 SKUs
    held = _held(erp, sweep_settings, committed_session)

    # when the operator looks at it before deciding
    detail = show(committed_session, held.run_id)

    # then each change it would make is there, with commerce's figure, the snapshot's and the result
    assert detail is not None and (detail["status"], list(detail["corrections"])) == ("held", [])
    assert list(detail["held_changes"]) == [{"sku": sku, "commerce_qty": 10, "erp_qty": 0, "new_qty": 0}
                                      for sku in SKUS[:10]]


def test_an_unknown_run_cannot_be_decided(sweep_settings, committed_session):
    with pytest.raises(RunNotHeld):
        approve_run(sweep_settings("http://127.0.0.1:9"), 424242)


def test_a_scheduled_sweep_is_held_and_its_slot_not_swept_again(erp, sweep_settings, committed_session):
    slot = datetime(2026, 1, 1, 3, tzinfo=UTC)
    url = erp(_with({sku: 0 for sku in SKUS[:10]}))
    seed_levels(committed_session, COMMERCE)
    settings = sweep_settings(url, **_limits(zeroed=0.02))

    first = run_sweep(settings, scheduled_for=slot)
    again = run_sweep(settings, scheduled_for=slot)

    assert (first.status, again.status) == ("held", "skipped")
    assert levels(committed_session) == COMMERCE


def test_dry_run_writes_nothing_and_lists_every_change(erp, sweep_settings, committed_session):
    # given 3 drifted SKUs, one with 2 units held for an order
    from erp_sync.shared.models import Order, StockHold

    url = erp(_with({"L-000": 0, "L-001": 12, "L-002": 7}))
    seed_levels(committed_session, COMMERCE)
    order = Order(order_id="ORD-DRY-1", order_date=datetime(2024, 1, 1, tzinfo=UTC), customer_ref="C")
    order.holds.append(StockHold(sku="L-001", quantity=2))
    committed_session.add(order)
    committed_session.commit()
    seen = []

    # when a dry run compares
    summary = run_sweep(sweep_settings(url), dry_run=True, on_change=seen.append)

    # then it lists each change and says what the run would be, and nothing was written
    assert [(c.sku, c.commerce_qty, c.erp_qty, c.new_qty, c.held) for c in seen] == [
        ("L-000", 10, 0, 0, 0), ("L-001", 10, 12, 12, 2), ("L-002", 10, 7, 7, 0)]
    assert (summary.dry_run, summary.run_id, summary.status, summary.mismatched) == (True, None, "succeeded", 3)
    assert levels(committed_session) == COMMERCE
    assert committed_session.scalar(select(func.count()).select_from(ReconciliationRun)) == 0
    assert committed_session.scalar(select(func.count()).select_from(ReconciliationHeldChange)) == 0


def test_drift_equal_to_minus_the_later_deltas_is_caught(erp, sweep_settings, committed_session):
    # given commerce at 11 while the ERP counted 10, then a sale stamped after the sweep begins:
    # commerce shows 10, the snapshot's figure, though the truth is 9
    url = erp({"D-1": 10})
    seed_levels(committed_session, {"D-1": 11})
    apply_stock_events(committed_session, [StockEvent("evt_sale_D-1", "D-1",
                                                      Delta(-1, datetime.now(UTC) + timedelta(minutes=5)))])
    committed_session.commit()

    # when a sweep runs
    summary = run_sweep(sweep_settings(url))

    # then the drift is corrected: the snapshot's figure less the later sale
    assert levels(committed_session) == {"D-1": 9}
    assert (summary.mismatched, summary.corrected) == (1, 1)


def test_a_held_sweep_that_found_drift_mails_the_hold_alone(erp, sweep_settings, committed_session, alert_mail,
                                                            inbox, db_engine):
    # given alert mail, and an ERP export with 6 of 100 SKUs changed (past the drift alert and the change limit)
    _, sender = alert_mail()
    url = erp(_with({sku: 11 for sku in SKUS[:6]}))
    seed_levels(committed_session, COMMERCE)

    # when a sweep runs
    summary = run_sweep(sweep_settings(url, **_limits(changed=0.05)))
    sender.close()

    # then the hold mailed, naming the run; no drift alert, as the drift is not established (a broken
    # export, most often): neither mailed nor recorded, so the drift gauge (Prometheus' alert) stays 0,
    # though the summary tells the share found
    assert (summary.status, summary.drift_alert, summary.mismatched) == ("held", False, 6)
    assert "erp_sync_reconcile_drift_alert 0.0" in exposition(db_engine).decode()
    [held] = inbox.messages
    assert held["Subject"].startswith(f"[erp-sync] sweep_held: reconciliation run {summary.run_id} held")
    assert "RECONCILE_MAX_CHANGED_SHARE" in held.get_content()
    assert f"erp-sync reconcile --approve {summary.run_id}" in held.get_content()


def test_approving_a_held_run_that_found_drift_raises_the_drift_alert(erp, sweep_settings, committed_session,
                                                                      db_engine, caplog):
    # given a sweep held for changing 6 of 100 SKUs, above the drift alert's share too (both 5%, the
    # defaults): its drift was not established, so no drift alert yet
    url = erp(_with({sku: 11 for sku in SKUS[:6]}))
    seed_levels(committed_session, COMMERCE)
    held = run_sweep(sweep_settings(url, **_limits(changed=0.05)))
    assert (held.status, held.drift_alert) == ("held", False)
    caplog.clear()

    # when an operator approves it: the export was sound, the shop had drifted
    with caplog.at_level("ERROR"):
        approved = approve_run(sweep_settings("http://127.0.0.1:9"), held.run_id)

    # then the drift is alerted and recorded (the gauge Prometheus' ErpSyncSweepDrift reads): webhooks
    # are being lost, and the runbook's "A drift alert" says where to look
    assert (approved.status, approved.drift_alert, approved.corrected) == ("succeeded", True, 6)
    assert "erp_sync_reconcile_drift_alert 1.0" in exposition(db_engine).decode()
    assert [(r.alert_cause, r.getMessage()) for r in caplog.records if r.getMessage().startswith("ALERT")] == [
        ("sweep_drift", f"ALERT reconciliation run {held.run_id}: 6 of 100 SKUs drifted (6.0%, above 5.0%): "
                        "webhooks are being lost")]


def test_a_rejected_run_raises_no_drift_alert(erp, sweep_settings, committed_session, caplog):
    held = _held(erp, sweep_settings, committed_session)
    caplog.clear()

    with caplog.at_level("ERROR"):
        rejected = reject_run(sweep_settings("http://127.0.0.1:9"), held.run_id)

    assert (rejected.status, rejected.drift_alert) == ("rejected", False)
    assert not [r for r in caplog.records if r.getMessage().startswith("ALERT")]


def test_rejecting_the_latest_sweep_does_not_bring_back_the_drift_alert_of_the_one_before(
        erp, sweep_settings, committed_session, db_engine):
    # given a sweep that found and corrected drift in 6 of 100 SKUs (its drift alert raised), then a
    # sweep held for 6 more changes, which an operator rejects (a broken export)
    seed_levels(committed_session, COMMERCE)
    drifted = run_sweep(sweep_settings(erp(_with({sku: 11 for sku in SKUS[:6]}))))
    assert (drifted.status, drifted.drift_alert) == ("succeeded", True)
    held = run_sweep(sweep_settings(erp(_with({sku: 12 for sku in SKUS})), **_limits(changed=0.05)))
    assert held.status == "held"

    # when it is rejected
    reject_run(sweep_settings("http://127.0.0.1:9"), held.run_id)

    # then the gauges read the rejected sweep, the latest: the drift ticket the operator closed stays closed
    metrics = exposition(db_engine).decode()
    assert "erp_sync_reconcile_drift_alert 0.0" in metrics
    assert "erp_sync_reconcile_last_run_failed 0.0" in metrics


def test_dry_run_locks_no_stock_row_and_raises_no_alert(erp, sweep_settings, committed_session, db_engine, caplog):
    # given 3 drifted SKUs of 100: past the drift alert's share
    url = erp(_with({"L-000": 0, "L-001": 12, "L-002": 7}))
    seed_levels(committed_session, COMMERCE)
    taken_while_listing = []

    def take_row(change: Change) -> None:
        # a webhook's update of the SKU, while the dry run still lists its changes
        with db_engine.connect() as writer:
            writer.execute(text("SELECT 1 FROM stock_levels WHERE sku = :sku FOR UPDATE NOWAIT"), {"sku": change.sku})
            taken_while_listing.append(change.sku)

    # when a dry run compares, with the drift alert at 1%
    summary = run_sweep(sweep_settings(url, reconcile_drift_alert_share=0.01), dry_run=True, on_change=take_row)

    # then every drifted SKU's row was free to write meanwhile, and the summary alone tells the drift:
    # no ALERT citing a run that is never recorded
    assert taken_while_listing == ["L-000", "L-001", "L-002"]
    assert (summary.dry_run, summary.drift_alert) == (True, True)
    assert not [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]


def test_a_dry_run_compares_while_a_sweep_runs_and_a_sweep_runs_while_a_dry_run_lists(
        erp, sweep_settings, committed_session, db_engine):
    # given 3 drifted SKUs of 100, and the sweep's lock held as a running sweep holds it
    url = erp(_with({"L-000": 0, "L-001": 12, "L-002": 7}))
    seed_levels(committed_session, COMMERCE)
    settings = sweep_settings(url)
    sweeps: list[SweepSummary] = []
    with db_engine.connect() as sweeping:
        sweeping.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})

        # when a dry run compares meanwhile, and a sweep starts while the dry run lists its changes
        dry = run_sweep(settings, dry_run=True)
        sweeping.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        sweeping.commit()
        run_sweep(settings, dry_run=True, on_change=lambda change: sweeps.append(run_sweep(settings)) if not sweeps
                  else None)

    # then the dry run was not skipped, and neither was the sweep: a dry run holds nothing
    assert (dry.status, dry.mismatched) == ("succeeded", 3)
    assert [(s.status, s.corrected) for s in sweeps] == [("succeeded", 3)]


def test_a_sweep_that_applied_drift_mails_it(erp, sweep_settings, committed_session, alert_mail, inbox):
    # given alert mail, and an ERP export with 6 of 100 SKUs changed, within the change limit
    _, sender = alert_mail()
    url = erp(_with({sku: 11 for sku in SKUS[:6]}))
    seed_levels(committed_session, COMMERCE)

    # when a sweep runs
    summary = run_sweep(sweep_settings(url, **_limits(changed=0.1)))
    sender.close()

    # then it corrected them, and the drift mailed, naming the run
    assert (summary.status, summary.corrected) == ("succeeded", 6)
    [drift] = inbox.messages
    assert drift["Subject"] == (f"[erp-sync] sweep_drift: reconciliation run {summary.run_id}: 6 of 100 SKUs drifted "
                                "(6.0%, above 5.0%): webhooks are being lost")


def test_approving_while_a_sweep_runs_says_it_waits_then_decides(erp, sweep_settings, committed_session, db_engine,
                                                                 caplog):
    # given a held run, and the sweep's lock held as a running sweep holds it
    held = _held(erp, sweep_settings, committed_session)
    decided: list[SweepSummary] = []
    with db_engine.connect() as sweeping:
        sweeping.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})

        # when the operator approves it meanwhile
        approving = threading.Thread(target=lambda: decided.append(approve_run(sweep_settings("http://127.0.0.1:9"),
                                                                               held.run_id)))
        approving.start()
        wait_for(lambda: "a sweep is in progress" in caplog.text)

        # then it says it waits, and has decided nothing while the sweep runs
        assert decided == []
        assert f"a sweep is in progress: run {held.run_id} is decided once it ends" in caplog.text
        sweeping.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        sweeping.commit()
        approving.join(timeout=30)

    # and once the sweep has ended, the run is approved
    assert [summary.status for summary in decided] == ["succeeded"]
    assert levels(committed_session) == COMMERCE | dict.fromkeys(SKUS[:10], 0)
