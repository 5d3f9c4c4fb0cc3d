"""The tie of two figures of one ERP timestamp means the same to the stock rule (Python) and to the
catalog's upserts (SQL): the one the door received later stands; unknown on either side, the later arrival."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from erp_sync.workers.catalog_writes import _TIE_TO_THE_LATER_RECEIVED
from erp_sync.workers.stock_rule import received_later

EARLIER = datetime(2026, 12, 7, 10, 0, 0, 100_000, tzinfo=UTC)
LATER = EARLIER + timedelta(microseconds=1)


@pytest.mark.parametrize(("held", "arriving"), [
    (None, None), (None, EARLIER), (EARLIER, None),
    (EARLIER, LATER), (LATER, EARLIER), (EARLIER, EARLIER),
], ids=["neither stamped", "held unstamped", "arriving unstamped", "arriving received later",
        "arriving received earlier", "received together"])
def test_the_catalogs_sql_and_the_stock_rule_settle_a_tie_alike(db_session, held, arriving):
    # when the catalog's SQL judges the arriving update against the row held
    fragment = _TIE_TO_THE_LATER_RECEIVED.format(row="held")
    arriving_wins = db_session.scalar(text(
        f"SELECT {fragment} FROM (SELECT CAST(:held AS timestamptz) AS received_at) AS held, "
        "(SELECT CAST(:arriving AS timestamptz) AS received_at) AS excluded"), {"held": held, "arriving": arriving})

    # then it takes the arriving update exactly when the stock rule takes the arriving total
    assert arriving_wins is (not received_later(held, arriving))
