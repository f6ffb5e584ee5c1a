"""The SQL of single workflow steps: start, finish, inputs, and the publishing outbox.

A queued step whose message is not on the broker yet has ``published_at IS NULL``;
:func:`lock_unpublished` row-locks such steps (``FOR UPDATE SKIP LOCKED``) so two
publishers never send the same step, and :func:`mark_published` closes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2 import extensions
from psycopg2.extras import Json


@dataclass(frozen=True)
class Message:
    """What the engine publishes for a queued step."""

    name: str
    task: str
    queue: str
    task_id: str
    params: dict[str, Any]
    max_retries: int
    retry_delay: float
    timeout: float | None


def lock_unpublished(cur: extensions.cursor, execution_id: str) -> list[Message]:
    """Queued steps whose message is not on the broker yet, row-locked (others skip them)."""
    cur.execute(
        "SELECT name, task, queue, task_id, params, max_retries, retry_delay, timeout_seconds"
        " FROM workflow_steps WHERE execution_id = %s AND status = 'queued'"
        " AND published_at IS NULL ORDER BY position FOR UPDATE SKIP LOCKED",
        (execution_id,),
    )
    return [Message(*row) for row in cur.fetchall()]


def mark_published(cur: extensions.cursor, execution_id: str, names: Sequence[str]) -> None:
    cur.execute(
        "UPDATE workflow_steps SET published_at = clock_timestamp()"
        " WHERE execution_id = %s AND name = ANY (%s)",
        (execution_id, list(names)),
    )


def step_status(
    cur: extensions.cursor, execution_id: str, name: str
) -> tuple[str, str | None, Any]:
    """``(status, task_id, result)`` of one step."""
    cur.execute(
        "SELECT status, task_id, result FROM workflow_steps WHERE execution_id = %s AND name = %s",
        (execution_id, name),
    )
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"execution {execution_id} has no step {name!r}")
    return str(row[0]), row[1], row[2]


def start_step(cur: extensions.cursor, execution_id: str, name: str, task_id: str) -> bool:
    """``queued``/``running`` -> ``running`` for this task id (a retry or redelivery re-enters)."""
    cur.execute(
        "UPDATE workflow_steps SET status = 'running', attempts = attempts + 1,"
        " started_at = coalesce(started_at, clock_timestamp())"
        " WHERE execution_id = %s AND name = %s AND task_id = %s"
        " AND status IN ('queued', 'running')",
        (execution_id, name, task_id),
    )
    return bool(cur.rowcount)


def inputs(cur: extensions.cursor, execution_id: str, name: str) -> tuple[Any, dict[str, Any]]:
    """The execution's input and the results of the step's dependencies."""
    cur.execute(
        "SELECT e.input, coalesce(jsonb_object_agg(d.name, d.result)"
        "  FILTER (WHERE d.name IS NOT NULL), '{}')"
        " FROM workflow_executions e JOIN workflow_steps s"
        "   ON s.execution_id = e.id AND s.name = %s"
        " LEFT JOIN workflow_steps d ON d.execution_id = e.id AND d.name = ANY (s.depends_on)"
        " WHERE e.id = %s GROUP BY e.input",
        (name, execution_id),
    )
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"execution {execution_id} has no step {name!r}")
    return row[0], dict(row[1])


def finish_step(
    cur: extensions.cursor,
    execution_id: str,
    name: str,
    task_id: str,
    status: str,
    result: Any = None,
    error: str | None = None,
) -> bool:
    """``running`` -> ``status`` for this task id; ``False`` when the step was not running."""
    cur.execute(
        "UPDATE workflow_steps SET status = %s, result = %s, error = %s,"
        " finished_at = clock_timestamp()"
        " WHERE execution_id = %s AND name = %s AND task_id = %s"
        " AND status IN ('queued', 'running')",
        (status, Json(result), error, execution_id, name, task_id),
    )
    return bool(cur.rowcount)


def note_error(cur: extensions.cursor, execution_id: str, name: str, error: str) -> None:
    cur.execute(
        "UPDATE workflow_steps SET error = %s WHERE execution_id = %s AND name = %s",
        (error, execution_id, name),
    )
