"""Workflow state in Postgres: the SQL of executions and of the graph.

Every function takes a cursor; the caller (:mod:`celeryref.workflows.engine`)
owns the transaction and takes the execution's row lock first with
:func:`lock_execution`, so the changes of one execution are serialized. The SQL
of single steps is in :mod:`celeryref.workflows.step_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import extensions
from psycopg2.extras import Json

from celeryref.workflows.definition import Step

#: Step states in which a step can still do something.
ACTIVE = ("pending", "queued", "running")


def insert_execution(
    cur: extensions.cursor,
    execution_id: str,
    workflow: str,
    payload: Any,
    steps: Sequence[tuple[Step, str]],
) -> None:
    """The execution (``running``) and its steps (``pending``), each with its queue."""
    cur.execute(
        "INSERT INTO workflow_executions (id, workflow, status, input)"
        " VALUES (%s, %s, 'running', %s)",
        (execution_id, workflow, Json(payload)),
    )
    for position, (step, queue) in enumerate(steps):
        cur.execute(
            "INSERT INTO workflow_steps (execution_id, name, position, task, queue, depends_on,"
            " params, max_retries, retry_delay, timeout_seconds, status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending')",
            (
                execution_id,
                step.name,
                position,
                step.task,
                queue,
                list(step.depends_on),
                Json(dict(step.params)),
                step.retries,
                step.retry_delay,
                step.timeout,
            ),
        )


def lock_execution(cur: extensions.cursor, execution_id: str) -> str | None:
    """Lock the execution row until the transaction ends; its status, ``None`` if unknown."""
    cur.execute("SELECT status FROM workflow_executions WHERE id = %s FOR UPDATE", (execution_id,))
    row = cur.fetchone()
    return None if row is None else str(row[0])


def try_lock_running(cur: extensions.cursor, execution_id: str) -> bool:
    """Lock the execution row if it is running and nobody holds its lock (the sweeper)."""
    cur.execute(
        "SELECT 1 FROM workflow_executions WHERE id = %s AND status = 'running'"
        " FOR UPDATE SKIP LOCKED",
        (execution_id,),
    )
    return cur.fetchone() is not None


def withdraw_unpublished(cur: extensions.cursor, execution_id: str) -> bool:
    """Delete the execution (its steps cascade) unless a step's message was published;
    ``False`` when one was (the sweeper got there first: the execution stands)."""
    if lock_execution(cur, execution_id) is None:
        return True
    cur.execute(
        "DELETE FROM workflow_executions e WHERE id = %s AND NOT EXISTS ("
        " SELECT 1 FROM workflow_steps s WHERE s.execution_id = e.id"
        " AND s.published_at IS NOT NULL)",
        (execution_id,),
    )
    return bool(cur.rowcount)


def queue_ready_steps(cur: extensions.cursor, execution_id: str) -> list[str]:
    """Move every pending step whose dependencies all succeeded to ``queued``; their names.

    The conditional UPDATE is what makes a step leave ``pending`` exactly once.
    """
    cur.execute(
        """
        UPDATE workflow_steps s
           SET status = 'queued', queued_at = clock_timestamp(), task_id = gen_random_uuid()::text
         WHERE s.execution_id = %(id)s AND s.status = 'pending'
           AND NOT EXISTS (
               SELECT 1 FROM workflow_steps d
                WHERE d.execution_id = s.execution_id AND d.name = ANY (s.depends_on)
                  AND d.status <> 'succeeded')
        RETURNING s.name
        """,
        {"id": execution_id},
    )
    return [str(name) for (name,) in cur.fetchall()]


def close_steps(
    cur: extensions.cursor,
    execution_id: str,
    statuses: Sequence[str],
    status: str,
    error: str | None,
) -> list[tuple[str | None, str]]:
    """Set every step in one of ``statuses`` to ``status``; ``(task_id, old status)`` of each."""
    cur.execute(
        """
        UPDATE workflow_steps s SET status = %(status)s, error = %(error)s,
               finished_at = clock_timestamp()
          FROM workflow_steps old
         WHERE s.execution_id = %(id)s AND old.execution_id = s.execution_id
           AND old.name = s.name AND s.status = ANY (%(statuses)s)
        RETURNING s.task_id, old.status
        """,
        {"id": execution_id, "status": status, "error": error, "statuses": list(statuses)},
    )
    return [(t, str(o)) for t, o in cur.fetchall()]


def sink_results(cur: extensions.cursor, execution_id: str) -> dict[str, Any] | None:
    """Results of the steps nothing depends on, or ``None`` while a step has not succeeded."""
    cur.execute(
        "SELECT bool_and(status = 'succeeded'), coalesce(jsonb_object_agg(name, result)"
        "  FILTER (WHERE NOT EXISTS (SELECT 1 FROM workflow_steps x"
        "   WHERE x.execution_id = s.execution_id AND s.name = ANY (x.depends_on))), '{}')"
        " FROM workflow_steps s WHERE execution_id = %s",
        (execution_id,),
    )
    done, results = cur.fetchone() or (False, None)
    return dict(results) if done else None


def finish_execution(
    cur: extensions.cursor, execution_id: str, status: str, result: Any, error: str | None
) -> None:
    cur.execute(
        "UPDATE workflow_executions SET status = %s, result = %s, error = %s,"
        " finished_at = clock_timestamp() WHERE id = %s",
        (status, Json(result), error, execution_id),
    )
