"""The sweep's set-based SQL decides every SKU as the stock rule does, against real PostgreSQL."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import TupleRow

from erp_sync.shared.models import StockChangeOutcome
from erp_sync.shared.pg import connect
from erp_sync.workers.reconcile_correct import correct_to_snapshot
from erp_sync.workers.stock_rule import NO_TOTAL_YET, Figure, Total, next_figure

TAKEN = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # the sweep began: the snapshot's stamp
READ_UNTIL = TAKEN + timedelta(seconds=10)  # the snapshot was read in full
# Around the snapshot: long before, at its start, while it streamed, as it ended, after it.
STAMPS = [TAKEN - timedelta(hours=1), TAKEN, TAKEN + timedelta(seconds=5), READ_UNTIL, READ_UNTIL + timedelta(hours=1)]
AS_OF = [NO_TOTAL_YET, *STAMPS]


@st.composite
def skus(draw):
    """A SKU's figure (with the door's receipt stamp of its total, or none), its applied deltas, and its
    figure in the snapshot (None: not in it)."""
    figure = Figure(draw(st.integers(0, 20)), draw(st.sampled_from(AS_OF)),
                    received_at=draw(st.sampled_from([None, TAKEN - timedelta(minutes=5)])))
    deltas = draw(st.lists(st.tuples(st.sampled_from(STAMPS), st.integers(-3, 3)), max_size=4))
    in_snapshot = draw(st.one_of(st.none(), st.integers(0, 20), st.just(figure.quantity)))
    return figure, deltas, in_snapshot


@pytest.fixture(scope="module")
def conn(migrated_database_url: str) -> Iterator[psycopg.Connection[TupleRow]]:
    with connect(migrated_database_url) as connection:
        yield connection


def sweep_in_a_rolled_back_transaction(conn, stock: dict[str, tuple]) -> tuple[dict[str, tuple], set[str]]:
    """Seed the SKUs, run the sweep's statements, read what they left; every SKU's figure, the corrected."""
    try:
        run_id = conn.execute("INSERT INTO reconciliation_runs (status) VALUES ('running') RETURNING id").fetchone()[0]
        conn.execute("CREATE TEMP TABLE reconcile_snapshot (sku text NOT NULL, qty integer NOT NULL) ON COMMIT DROP")
        for number, (sku, (figure, deltas, in_snapshot)) in enumerate(stock.items()):
            conn.execute("INSERT INTO stock_levels (sku, erp_quantity, erp_as_of, received_at) VALUES (%s, %s, %s, %s)",
                         (sku, figure.quantity, figure.as_of, figure.received_at))
            for stamped, delta in deltas:
                conn.execute("INSERT INTO stock_changes (sku, event_id, kind, delta, erp_timestamp, outcome) "
                             "VALUES (%s, %s, 'delta', %s, %s, 'applied')", (sku, f"evt-{number}", delta, stamped))
            if in_snapshot is not None:
                conn.execute("INSERT INTO reconcile_snapshot VALUES (%s, %s)", (sku, in_snapshot))

        correct_to_snapshot(conn, run_id, TAKEN, READ_UNTIL)

        rows = conn.execute("SELECT sku, erp_quantity, erp_as_of, erp_unsure_before, received_at FROM stock_levels "
                            "WHERE sku = ANY(%s)", (list(stock),)).fetchall()
        corrected = conn.execute("SELECT sku FROM reconciliation_corrections WHERE run_id = %s", (run_id,)).fetchall()
        return {sku: Figure(*figure) for sku, *figure in rows}, {sku for (sku,) in corrected}
    finally:
        conn.rollback()


def by_the_rule(figure: Figure, deltas: list[tuple[datetime, int]], in_snapshot: int | None) -> tuple[Figure, bool]:
    """What the sweep should leave, by the pure rule: the snapshot is a total stamped when the sweep began,
    which may hold what the ERP stamped until it was read in full."""
    unchanged = figure, False
    # A figure stamped in the second the snapshot began or later may be newer than the snapshot's row.
    if in_snapshot is None or figure.as_of >= TAKEN:
        return unchanged
    # A delta stamped while the snapshot streamed may or may not be in it: no correction on a guess.
    if any(TAKEN <= stamped < READ_UNTIL for stamped, _ in deltas):
        return unchanged
    decision = next_figure(figure, deltas, Total(in_snapshot, TAKEN))
    # Only a figure that changes is written (and its erp_as_of moved); no door received a correction.
    if decision.outcome is not StockChangeOutcome.APPLIED or decision.figure.quantity == figure.quantity:
        return unchanged
    return Figure(decision.figure.quantity, TAKEN, READ_UNTIL), True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=st.lists(skus(), min_size=1, max_size=8))
def test_the_sweep_decides_each_sku_as_the_stock_rule_does(conn, generated):
    # given SKUs with figures, applied deltas stamped around the snapshot, and a snapshot
    run = uuid.uuid4().hex[:12]
    stock = {f"RULE-{run}-{number}": sku for number, sku in enumerate(generated)}

    # when the sweep's statements run over them
    levels, corrected = sweep_in_a_rolled_back_transaction(conn, stock)

    # then each SKU ends where the pure rule takes it, and the corrected ones are those it changes
    expected = {sku: by_the_rule(*spec) for sku, spec in stock.items()}
    assert levels == {sku: figure for sku, (figure, _) in expected.items()}
    assert corrected == {sku for sku, (_, changed) in expected.items() if changed}
