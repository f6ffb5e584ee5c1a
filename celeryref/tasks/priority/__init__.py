"""Tasks of the ``priority`` queue: urgent, short, served by a dedicated worker."""

from __future__ import annotations

import time
from typing import Any

from celeryref.adapters import db, redis_state
from celeryref.alerts import delivery as alerts
from celeryref.celery_app import app
from celeryref.reliability.retry import RetryPolicy
from celeryref.settings import settings


def _timed(check: Any) -> float:
    started = time.perf_counter()
    check()
    return round((time.perf_counter() - started) * 1000, 2)


def _postgres_select_one() -> None:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


@app.task(bind=True, soft_time_limit=20, time_limit=30)
def health_check(self: Any) -> dict[str, Any]:
    """Probe Redis and Postgres; record and return their latencies in milliseconds."""
    redis_ms = _timed(redis_state.client().ping)
    postgres_ms = _timed(_postgres_select_one)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO health_checks (worker, redis_ms, postgres_ms) VALUES (%s, %s, %s)",
            (self.request.hostname, redis_ms, postgres_ms),
        )
    return {"redis_ms": redis_ms, "postgres_ms": postgres_ms, "worker": self.request.hostname}


@app.task(
    retry_policy=RetryPolicy(max_retries=5, base_delay=2.0, max_delay=120.0),
    alert_on_dead_letter=False,
)
def notify_operators(
    title: str, body: str, severity: str, source: str, details: dict[str, Any] | None = None
) -> list[str]:
    """Deliver an operator alert to every configured channel (webhook, e-mail).

    Sent by the task base class when a task is dead-lettered or hits a critical
    error; its own failures are retried and logged but never alert again (no loop).
    """
    alert = alerts.Alert(
        title=title, body=body, severity=severity, source=source, details=details or {}
    )
    return alerts.deliver(alert, settings.alerts)
