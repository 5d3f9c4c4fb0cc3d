"""The alert throttle: each cause mails once per period, then once more with the count it held back.

The state is one row per cause in PostgreSQL (`alert_throttle`), read and written under a row
lock, so every process of every worker shares one period per cause and one clock (the
database's). The decisions are pure functions of that row.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import TupleRow

from erp_sync.shared.pg import connect, translate_pg_error


@dataclass(frozen=True)
class Verdict:
    """Whether to mail now, how many occurrences since `since` went unmailed, when to look again."""

    mail: bool
    unmailed: int = 0
    since: datetime | None = None
    recheck_in_s: float | None = None


@dataclass(frozen=True)
class State:
    mailed_at: datetime
    unmailed: int


def on_occurrence(now: datetime, state: State | None, period: timedelta) -> tuple[Verdict, State]:
    """A cause occurred: mail unless it mailed within the period; then count it for the next mail."""
    if state is None:
        return Verdict(mail=True), State(now, 0)
    due = state.mailed_at + period
    if now >= due:
        # A count held back by a process that stopped before its period ended goes out with this mail.
        return Verdict(True, state.unmailed, state.mailed_at), State(now, 0)
    return Verdict(False, recheck_in_s=(due - now).total_seconds()), State(state.mailed_at, state.unmailed + 1)


def on_period_end(now: datetime, state: State | None, period: timedelta) -> tuple[Verdict, State | None]:
    """A period may have ended: mail the count it held back, if any and nobody did yet."""
    if state is None or state.unmailed == 0:
        return Verdict(mail=False), state
    due = state.mailed_at + period
    if now < due:
        return Verdict(False, recheck_in_s=(due - now).total_seconds()), state
    return Verdict(True, state.unmailed, state.mailed_at), State(now, 0)


class PgThrottle:
    """The throttle's state in PostgreSQL; one short transaction per decision."""

    def __init__(self, database_url: str, period_s: float) -> None:
        self._database_url = database_url
        self._period = timedelta(seconds=period_s)

    def occurred(self, cause: str, text: str) -> Verdict:
        """The verdict on one occurrence; raises DatabaseUnavailable (or another ErpSyncError) when it cannot tell."""
        try:
            return self._occurred(cause, text)
        except psycopg.Error as exc:
            raise translate_pg_error(exc) from exc

    def period_ended(self, cause: str) -> tuple[Verdict, str]:
        """The verdict at the period's end, with the latest occurrence's text."""
        try:
            return self._period_ended(cause)
        except psycopg.Error as exc:
            raise translate_pg_error(exc) from exc

    def _occurred(self, cause: str, text: str) -> Verdict:
        with connect(self._database_url) as connection, connection.transaction():
            inserted = connection.execute(
                "INSERT INTO alert_throttle (cause, mailed_at, unmailed, latest_text) VALUES (%s, now(), 0, %s)"
                " ON CONFLICT (cause) DO NOTHING RETURNING cause", (cause, text)).fetchone()
            if inserted is not None:
                return Verdict(mail=True)
            now, state = self._locked(connection, cause)
            verdict, new = on_occurrence(now, state, self._period)
            connection.execute("UPDATE alert_throttle SET mailed_at = %s, unmailed = %s, latest_text = %s"
                               " WHERE cause = %s", (new.mailed_at, new.unmailed, text, cause))
            return verdict

    def _period_ended(self, cause: str) -> tuple[Verdict, str]:
        with connect(self._database_url) as connection, connection.transaction():
            now, state = self._locked(connection, cause)
            verdict, new = on_period_end(now, state, self._period)
            if verdict.mail and new is not None:
                connection.execute("UPDATE alert_throttle SET mailed_at = %s, unmailed = 0 WHERE cause = %s",
                                   (new.mailed_at, cause))
            row = connection.execute("SELECT latest_text FROM alert_throttle WHERE cause = %s", (cause,)).fetchone()
            return verdict, "" if row is None else str(row[0])

    @staticmethod
    def _locked(connection: psycopg.Connection[TupleRow], cause: str) -> tuple[datetime, State | None]:
        row = connection.execute("SELECT now(), mailed_at, unmailed FROM alert_throttle WHERE cause = %s FOR UPDATE",
                                 (cause,)).fetchone()
        if row is None:
            now = connection.execute("SELECT now()").fetchone()
            assert now is not None
            return now[0], None
        return row[0], State(row[1], row[2])
