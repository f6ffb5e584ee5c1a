"""The SQL of single workflow steps: start, finish, inputs, and the publishing outbox.

A queued step whose message is not on the broker yet has ``published_at IS NULL``;
:func:`lock_unpublished` row-locks such steps (``FOR UPDATE SKIP LOCKED``) so two
publishers never send the same step, and :func:`mark_published` closes them;
:func:`stale_unpublished` finds the executions the sweeper must publish (F17).
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


def stale_unpublished(cur: extensions.cursor, older_than: float, limit: int) -> list[str]:
    """Executions with a step queued more than ``older_than`` seconds ago and still unpublished."""
    cur.execute(
        "SELECT DISTINCT execution_id::text FROM workflow_steps"
        " WHERE status = 'queued' AND published_at IS NULL"
        " AND queued_at < clock_timestamp() - make_interval(secs => %s) LIMIT %s",
        (older_than, limit),
    )
    return [str(eid) for (eid,) in cur.fetchall()]


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


def start_step(
    cur: extensions.cursor, execution_id: str, name: str, task_id: str, dispatch: str | None
) -> bool:
    """``queued`` -> ``running`` for this task id and ``dispatch``; ``running`` re-enters only
    for the dispatch that started it (a retry, a redelivery), never for a second publish."""
    cur.execute(
        "UPDATE workflow_steps SET status = 'running', attempts = attempts + 1,"
        " started_at = coalesce(started_at, clock_timestamp()),"
        " running_dispatch = coalesce(%(dispatch)s::text, running_dispatch)"
        " WHERE execution_id = %(id)s AND name = %(name)s AND task_id = %(task)s"
        " AND (status = 'queued' OR (status = 'running' AND (%(dispatch)s::text IS NULL"
        "      OR running_dispatch IS NULL OR running_dispatch = %(dispatch)s::text)))",
        {"id": execution_id, "name": name, "task": task_id, "dispatch": dispatch},
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
