"""The webhook outbox: events waiting to be delivered, their attempts, and the admin alerts."""
from __future__ import annotations

import sqlite3
from typing import Any

from erp_sync.sandbox_erp.events import Event, encode, utc_now

PENDING = "pending"
DELIVERED = "delivered"
DATA_ERROR = "data_error"  # 400: spec 7.1 says log it and never retry
REJECTED = "rejected"  # another 4xx: retrying the same bytes cannot help either
FAILED = "failed"  # still failing at the alert horizon
NOT_SENT = "not_sent"  # no webhook URL configured


def enqueue(conn: sqlite3.Connection, event: Event, now: float, deliver: bool = True) -> None:
    """Queue an event in the caller's transaction, so state and event commit together."""
    conn.execute(
        "INSERT INTO outbox (event_id, event_type, body, status, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)",
        (event["event_id"], event["event_type"], encode(event), PENDING if deliver else NOT_SENT, now, now),
    )


def due(conn: sqlite3.Connection, now: float, limit: int = 50) -> list[tuple[int, str, bytes, int, float]]:
    """Pending deliveries whose time has come: (id, event_id, body, attempts, created_at), oldest first."""
    rows = conn.execute(
        "SELECT id, event_id, body, attempts, created_at FROM outbox"
        " WHERE status = ? AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        (PENDING, now, limit),
    ).fetchall()
    return [(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), float(r[4])) for r in rows]


def next_due_at(conn: sqlite3.Connection) -> float | None:
    """When the next pending delivery is due, None when nothing is pending."""
    row = conn.execute("SELECT min(next_attempt_at) FROM outbox WHERE status = ?", (PENDING,)).fetchone()
    return None if row[0] is None else float(row[0])


def record_attempt(
    conn: sqlite3.Connection, outbox_id: int, now: float, status: int | None, error: str | None,
    new_status: str, next_attempt_at: float | None,
) -> None:
    """Note one delivery attempt and what happens next."""
    conn.execute(
        "INSERT INTO delivery_attempts (outbox_id, attempted_at, status, error) VALUES (?, ?, ?, ?)",
        (outbox_id, now, status, error),
    )
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, status = ?, next_attempt_at = coalesce(?, next_attempt_at),"
        " last_status = ?, last_error = ? WHERE id = ?",
        (new_status, next_attempt_at, status, error, outbox_id),
    )


def add_alert(conn: sqlite3.Connection, event_id: str, message: str) -> None:
    """Record an admin alert (spec 7.1 emails one; the sandbox keeps it for the admin API)."""
    conn.execute("INSERT INTO alerts (event_id, message, created_at) VALUES (?, ?, ?)", (event_id, message, utc_now()))


def list_deliveries(conn: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The newest deliveries with their attempt times."""
    rows = conn.execute(
        "SELECT id, event_id, event_type, status, attempts, created_at, next_attempt_at, last_status, last_error"
        " FROM outbox ORDER BY id DESC LIMIT ?", (limit,),
    ).fetchall()
    result = []
    for row in rows:
        attempts = conn.execute(
            "SELECT attempted_at, status, error FROM delivery_attempts WHERE outbox_id = ? ORDER BY attempted_at",
            (row[0],),
        ).fetchall()
        result.append({
            "event_id": row[1], "event_type": row[2], "status": row[3], "attempts": row[4], "created_at": row[5],
            "next_attempt_at": row[6], "last_status": row[7], "last_error": row[8],
            "attempt_log": [{"at": a[0], "status": a[1], "error": a[2]} for a in attempts],
        })
    return result


def list_alerts(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every admin alert raised, oldest first."""
    rows = conn.execute("SELECT id, event_id, message, created_at FROM alerts ORDER BY id").fetchall()
    return [{"id": r[0], "event_id": r[1], "message": r[2], "created_at": r[3]} for r in rows]
