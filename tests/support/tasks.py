"""Tasks that exist only for tests: they make side effects and failures observable.

Workers started by the tests import this module (``celery worker -I tests.support.tasks``).
Their tables are created by :func:`create_tables`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import OrderedDict
from typing import Any

import psycopg2
from celery import Task, signals
from celery.exceptions import SoftTimeLimitExceeded
from celery.worker.control import control_command
from kombu import Connection

from celeryref.adapters import db, redis_state
from celeryref.celery_app import app
from celeryref.errors import InvalidArguments, UpstreamUnavailable
from celeryref.reliability.dead_letters import unrecorded
from celeryref.reliability.retry import RetryPolicy

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


def _insert_side_effect(label: str, task_id: str) -> int:
    """One row for ``label``; returns how many rows ``label`` has now."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO test_side_effects (label, task_id) VALUES (%s, %s)", (label, task_id)
        )
        cur.execute("SELECT count(*) FROM test_side_effects WHERE label = %s", (label,))
        (count,) = cur.fetchone()
    return int(count)


@app.task(name="tests.support.hold", bind=True)
def hold(self: Any, label: str, seconds: float) -> dict[str, Any]:
    """One row per run (not idempotent: every run shows), then hold the process."""
    runs = _insert_side_effect(label, self.request.id)
    time.sleep(seconds)
    return {"label": label, "runs": runs}


@app.task(
    name="tests.support.slow_io", bind=True, idempotent=True, soft_time_limit=0.5, time_limit=1
)
def slow_io(self: Any, label: str, seconds: float) -> dict[str, Any]:
    """Idempotent, ``time_limit=1`` (soft 0.5): one row, then ``seconds`` of blocking work that no
    exception can interrupt (a thread cannot be killed)."""
    runs = _insert_side_effect(label, self.request.id)
    time.sleep(seconds)
    return {"label": label, "runs": runs}


@app.task(
    name="tests.support.hold_stock_request", bind=True, Request="celery.worker.request:Request"
)
def hold_stock_request(self: Any, label: str, seconds: float) -> dict[str, Any]:
    """:func:`hold` with Celery's own worker request (the control of finding F15)."""
    runs = _insert_side_effect(label, self.request.id)
    time.sleep(seconds)
    return {"label": label, "runs": runs}


#: A broker address nothing listens on: publishing there fails at once, for real.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


def _retry_through_unreachable_broker(task: Any, label: str) -> dict[str, Any]:
    runs = _insert_side_effect(label, task.request.id)
    if runs == 1:
        with Connection(UNREACHABLE_BROKER) as unreachable:
            raise task.retry(
                exc=UpstreamUnavailable("first run fails"), countdown=0, connection=unreachable
            )
    return {"label": label, "runs": runs}


@app.task(name="tests.support.retry_unpublished", bind=True)
def retry_unpublished(self: Any, label: str) -> dict[str, Any]:
    """The first run's retry cannot be published (the broker is unreachable); the second
    run succeeds."""
    return _retry_through_unreachable_broker(self, label)


@app.task(name="tests.support.retry_unpublished_stock", bind=True, base=Task)
def retry_unpublished_stock(self: Any, label: str) -> dict[str, Any]:
    """:func:`retry_unpublished` on Celery's own task class (the control of finding F15)."""
    return _retry_through_unreachable_broker(self, label)


@app.task(name="tests.support.invalid_input")
def invalid_input(label: str) -> None:
    """Fail for good (a permanent error): straight to the dead letters."""
    raise InvalidArguments(f"{label} is invalid")


def state_key(*parts: object) -> str:
    """A key of the state Redis the tests' tasks use (runs, pids, releases)."""
    return redis_state.key("test", *parts)


@app.task(name="tests.support.invalid_while_stores_down", bind=True)
def invalid_while_stores_down(self: Any, label: str) -> None:
    """Fail for good on every run, counting runs in Redis (Postgres may be away). From
    the second run on, first wait (up to 60 s) until the Redis fallback list is usable:
    the test breaks it before the first run and repairs it once the second has begun."""
    runs = int(redis_state.client().incr(state_key("runs", label)))
    deadline = time.monotonic() + 60
    while runs > 1 and redis_state.client().type(unrecorded.UNRECORDED_KEY) == b"string":
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise InvalidArguments(f"{label} is invalid (run {runs})")


@app.task(name="tests.support.hold_until_released", bind=True)
def hold_until_released(self: Any, label: str) -> dict[str, Any]:
    """One row per run and the pool process's pid in Redis, then hold (up to 120 s)
    until the test sets the release key: a long task, stopped as the test likes."""
    runs = _insert_side_effect(label, self.request.id)
    client = redis_state.client()
    client.rpush(state_key("pids", label), os.getpid())
    deadline = time.monotonic() + 120
    while not client.exists(state_key("release", label)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"label": label, "runs": runs}


# -- worker-side hooks (registered in every worker that imports this module) ------------

#: The worker-side request of the tasks this worker received, newest last (bounded).
RECEIVED: OrderedDict[str, Any] = OrderedDict()


@signals.task_received.connect
def _keep_request(sender: Any = None, request: Any = None, **_: Any) -> None:
    if request is not None:
        RECEIVED[request.id] = request
        while len(RECEIVED) > 1000:
            RECEIVED.popitem(last=False)


@control_command(args=[("task_id", str), ("running_id", str)], signature="<task_id> <running_id>")
def cancel_finished_request(state: Any, task_id: str, running_id: str) -> dict[str, Any]:
    """Cancel the (finished) request ``task_id`` as Celery cancels every request it thinks
    is running after a lost broker connection, while ``running_id`` runs in the same pool
    process: the race of finding F15, made deterministic."""
    finished, running = RECEIVED.get(task_id), RECEIVED.get(running_id)
    if finished is None or running is None or not running.time_start:
        return {"error": f"{task_id} or {running_id} not received, or not started"}
    if finished.worker_pid != running.worker_pid:
        return {"error": f"pids differ: {finished.worker_pid} != {running.worker_pid}"}
    finished.cancel(state.consumer.pool)
    return {"ok": f"cancelled {task_id}, process {finished.worker_pid}"}
