"""Tasks of the ``scheduled`` queue, fired by beat (see :mod:`celeryref.app.beat_schedule`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg2.extras import Json

from celeryref.adapters import db
from celeryref.celery_app import app

#: Days of heartbeats and health checks kept by ``monthly_archive``.
RETENTION_DAYS = 31


def _store_report(kind: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Count the period's activity, store it in ``reports``, return it."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT
              (SELECT count(*) FROM beat_heartbeats WHERE fired_at >= %(s)s AND fired_at < %(e)s),
              (SELECT count(*) FROM health_checks WHERE checked_at >= %(s)s AND checked_at < %(e)s),
              (SELECT count(*) FROM user_sessions WHERE created_at >= %(s)s AND created_at < %(e)s)
            """,
            {"s": start, "e": end},
        )
        heartbeats, health_checks, sessions = db.fetch_one(cur)
        body = {"heartbeats": heartbeats, "health_checks": health_checks, "new_sessions": sessions}
        cur.execute(
            "INSERT INTO reports (kind, period_start, period_end, body) VALUES (%s, %s, %s, %s)"
            " RETURNING id",
            (kind, start, end, Json(body)),
        )
        (report_id,) = db.fetch_one(cur)
    period = {"start": start.isoformat(), "end": end.isoformat()}
    return {"id": report_id, "kind": kind, **period, **body}


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@app.task
def cleanup_expired_sessions() -> int:
    """Delete sessions whose ``expires_at`` has passed; return how many."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM user_sessions WHERE expires_at < now()")
        return int(cur.rowcount)


@app.task
def daily_report() -> dict[str, Any]:
    """Report on yesterday (UTC days)."""
    end = _midnight(datetime.now(UTC))
    return _store_report("daily", end - timedelta(days=1), end)


@app.task
def weekly_summary() -> dict[str, Any]:
    """Report on the seven days before today."""
    end = _midnight(datetime.now(UTC))
    return _store_report("weekly", end - timedelta(days=7), end)


@app.task
def monthly_archive() -> dict[str, int]:
    """Report on last month, then delete heartbeats and health checks past retention."""
    end = _midnight(datetime.now(UTC)).replace(day=1)
    start = (end - timedelta(days=1)).replace(day=1)
    _store_report("monthly", start, end)
    cutoff = datetime.now(UTC) - timedelta(days=RETENTION_DAYS)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM beat_heartbeats WHERE fired_at < %s", (cutoff,))
        heartbeats = cur.rowcount
        cur.execute("DELETE FROM health_checks WHERE checked_at < %s", (cutoff,))
        checks = cur.rowcount
    return {"heartbeats_deleted": heartbeats, "health_checks_deleted": checks}


@app.task(bind=True)
def beat_heartbeat(self: Any, source: str, note: str = "") -> dict[str, Any]:
    """Record that beat fired (``source``, ``note``) and which worker ran it."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO beat_heartbeats (source, note, worker, task_id) VALUES (%s, %s, %s, %s)"
            " RETURNING fired_at",
            (source, note, self.request.hostname, self.request.id),
        )
        (fired_at,) = db.fetch_one(cur)
    return {"source": source, "worker": self.request.hostname, "fired_at": fired_at.isoformat()}
