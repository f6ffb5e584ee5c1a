"""Tasks that exist only for tests: they make side effects and failures observable.

Workers started by the tests import this module (``celery worker -I tests.support.tasks``).
Their tables are created by :func:`create_tables`.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psycopg2
from celery.exceptions import SoftTimeLimitExceeded

from celeryref import db
from celeryref.celery_app import app
from celeryref.errors import InvalidArguments, UpstreamUnavailable
from celeryref.retry import RetryPolicy

FAST_RETRIES = RetryPolicy(max_retries=2, base_delay=0.05, max_delay=0.2)


def create_tables() -> None:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS test_side_effects ("
            " id bigserial PRIMARY KEY, label text NOT NULL, task_id text NOT NULL,"
            " started_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        cur.execute(
            "CREATE TABLE IF NOT EXISTS test_orders ("
            " id bigint PRIMARY KEY, total numeric NOT NULL, discounts integer NOT NULL DEFAULT 0)"
        )


def truncate_tables() -> None:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE test_side_effects, test_orders RESTART IDENTITY")


@app.task(name="tests.support.side_effect", bind=True, idempotent=True)
def side_effect(self: Any, label: str, hold_seconds: float = 0.0) -> dict[str, Any]:
    """Insert one row (the side effect), then hold the key for ``hold_seconds``."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO test_side_effects (label, task_id) VALUES (%s, %s)",
            (label, self.request.id),
        )
    time.sleep(hold_seconds)
    return {"label": label, "ran_as": self.request.id}


@app.task(
    name="tests.support.effect_then_failure", bind=True, idempotent=True, retry_policy=FAST_RETRIES
)
def effect_then_failure(self: Any, label: str, in_transaction: bool) -> dict[str, Any]:
    """Insert one row, then fail transiently on the first attempt, after the commit: a
    stand-in for ``complete()`` failing because Postgres went away (finding F11).

    With ``in_transaction`` the key is completed in the row's transaction."""
    result = {"label": label, "ran_as": self.request.id}
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO test_side_effects (label, task_id) VALUES (%s, %s)",
            (label, self.request.id),
        )
        if in_transaction:
            self.complete_idempotency_key(cur, result)
    if self.request.retries == 0:
        raise UpstreamUnavailable("gone after the effect, before the key was completed")
    return result


@app.task(name="tests.support.apply_discount", idempotent=True)
def apply_discount(order_id: int) -> dict[str, Any]:
    """Count one discount on an existing order; a missing order is a permanent error."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE test_orders SET discounts = discounts + 1 WHERE id = %s RETURNING discounts",
            (order_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise InvalidArguments(f"order {order_id} does not exist")
    return {"order_id": order_id, "discounts": row[0]}


@app.task(name="tests.support.always_unavailable", retry_policy=FAST_RETRIES)
def always_unavailable() -> None:
    """A dependency that never comes back."""
    raise UpstreamUnavailable("the test upstream is down for good")


@app.task(name="tests.support.database_gone", retry_policy=RetryPolicy(max_retries=0))
def database_gone() -> None:
    """Raise what psycopg2 raises when the server went away."""
    raise psycopg2.OperationalError("server closed the connection unexpectedly")


@app.task(name="tests.support.sleep_past_limit", soft_time_limit=0.5, time_limit=1.5)
def sleep_past_limit(seconds: float) -> None:
    """Swallow the soft time limit, as careless code does: the hard limit must kill it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(SoftTimeLimitExceeded):
            time.sleep(max(0.0, deadline - time.monotonic()))
