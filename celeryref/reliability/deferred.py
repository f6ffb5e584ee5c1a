"""The durable scheduler: tasks due further ahead than Redis can hold them (F23).

A countdown/ETA plus the task's hard time limit longer than the broker's visibility
timeout would make Redis deliver the task twice
(:func:`celeryref.reliability.delivery_guard.check_delay`). Such a send writes a row
here instead of a message (:meth:`celeryref.upstream.app.App.send_task`); the beat-driven
sweep (``celeryref.tasks.scheduled.deferred``, every ``DEFERRED_SWEEP_SECONDS``) publishes
each row once it is due, with its original task id, so the caller's ``AsyncResult``
follows the run, and marks it published.

Guarantee: at least once, with the same task id. Each row is published under a row
lock (``FOR UPDATE SKIP LOCKED``, the sweep's lease on it): two sweeps never publish one
row at once, and a sweep that dies releases its rows to the next. A sweep that dies
after the publish and before its mark commits publishes the row again (idempotent tasks
run it once). A row runs up to one sweep interval after it is due. A row that can never
be published (a permanent error, e.g. its time limit no longer fits a lowered visibility
timeout) is marked with its ``error`` and logged, so it cannot block the rows behind it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.utils import uuid
from psycopg2.extras import Json

from celeryref.adapters import db
from celeryref.errors import InvalidArguments, PermanentError

logger = logging.getLogger(__name__)

#: Send options that are objects of the sending process, not part of the task.
PROCESS_OPTIONS = frozenset(
    {"connection", "producer", "router", "result_cls", "publisher", "task_type"}
)
#: Most rows one sweep publishes; the next sweep takes the rest.
SWEEP_BATCH = 500


@dataclass(frozen=True)
class Deferred:
    """One stored send: what ``send_task`` is called with when it is due."""

    task_id: str
    task_name: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    due_at: datetime


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be stored")


def storable_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` as JSON: unset ones and the sender's own objects dropped, datetimes
    (``expires``) as ISO strings. Raises :class:`InvalidArguments` for anything else."""
    kept = {k: v for k, v in options.items() if v is not None and k not in PROCESS_OPTIONS}
    kept.pop("task_id", None)
    try:
        stored: dict[str, Any] = json.loads(json.dumps(kept, default=_encode))
    except (TypeError, ValueError) as exc:
        raise InvalidArguments(f"a deferred task's options must be JSON: {exc}") from exc
    return stored


def defer(task_name: str, args: Any, kwargs: Any, options: dict[str, Any], due_at: datetime) -> str:
    """Store a send due at ``due_at`` instead of publishing it; return its task id
    (``options["task_id"]`` or a new one). Storing one (task id, retry) twice keeps one."""
    task_id = str(options.get("task_id") or uuid())
    stored = storable_options(options)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO deferred_tasks (task_id, retries, task_name, args, kwargs, options,"
            " due_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (task_id, retries) DO NOTHING",
            (
                task_id,
                int(stored.get("retries", 0)),
                task_name,
                Json(list(args or ())),
                Json(dict(kwargs or {})),
                Json(stored),
                due_at,
            ),
        )
    return task_id


def publish_due(publish: Callable[[Deferred], None], batch: int = SWEEP_BATCH) -> int:
    """Publish (with ``publish``) every unpublished row that is due, oldest first, each
    in its own transaction under a row lock, and mark it; return how many."""
    published = 0
    while published < batch:
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id, task_id, task_name, args, kwargs, options, due_at"
                " FROM deferred_tasks WHERE published_at IS NULL AND due_at <= now()"
                " ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
            row = cur.fetchone()
            if row is None:
                return published
            row_id, *fields = row
            error = None
            try:
                publish(Deferred(*fields))
            except PermanentError as exc:  # e.g. its time limit no longer fits: never will
                logger.error("deferred task %s cannot be published: %s", fields[0], exc)
                error = f"{type(exc).__name__}: {exc}"
            cur.execute(
                "UPDATE deferred_tasks SET published_at = now(), error = %s WHERE id = %s",
                (error, row_id),
            )
        published += 1
    return published


def pending() -> list[Deferred]:
    """Rows not published yet, soonest first (operators, tests)."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT task_id, task_name, args, kwargs, options, due_at FROM deferred_tasks"
            " WHERE published_at IS NULL ORDER BY due_at"
        )
        return [Deferred(*row) for row in cur.fetchall()]
