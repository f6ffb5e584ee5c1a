"""The dead-letter store: tasks that failed for good, kept in Postgres to inspect and replay.

A task lands here when it raised a permanent error, ran out of retries, or was
refused as a redelivery loop. Nothing is dropped silently: each entry has the
task's name, queue, arguments, exception, traceback and attempt count. Replay
re-sends the same task with the same arguments and links the new run to the
entry (header ``replay_of``); an entry is replayed once unless forced.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import Celery
from psycopg2 import extensions
from psycopg2.extras import Json, RealDictCursor

from celeryref.adapters import db
from celeryref.errors import Classification, InvalidArguments, NotFound

#: Header carrying the id of the dead-letter entry a task run replays.
REPLAY_HEADER = "replay_of"

_COLUMNS = (
    "id, task_id, task_name, queue, args, kwargs, headers, exception_type, exception,"
    " traceback, category, severity, retries, failed_at, replay_of, replayed_at, replay_task_id"
)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    task_id: str
    task_name: str
    queue: str | None
    args: list[Any]
    kwargs: dict[str, Any]
    headers: dict[str, Any]
    exception_type: str
    exception: str
    traceback: str | None
    category: str
    severity: str
    retries: int
    failed_at: datetime
    replay_of: int | None
    replayed_at: datetime | None
    replay_task_id: str | None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly view without the traceback."""
        return {
            "id": self.id,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "queue": self.queue,
            "exception": f"{self.exception_type}: {self.exception}",
            "category": self.category,
            "retries": self.retries,
            "failed_at": self.failed_at.isoformat(),
            "replay_of": self.replay_of,
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
            "replay_task_id": self.replay_task_id,
        }


def record(
    *,
    task_id: str,
    task_name: str,
    queue: str | None,
    args: Any,
    kwargs: Any,
    headers: dict[str, Any],
    exc: BaseException,
    traceback: str | None,
    classification: Classification,
    retries: int,
    conn: extensions.connection | None = None,
) -> int:
    """Store one failed task; return the entry id. On ``conn`` when given (the caller
    commits), else on a pooled connection."""
    replay_of = headers.get(REPLAY_HEADER)
    borrowed: AbstractContextManager[extensions.connection] = (
        nullcontext(conn) if conn is not None else db.connection()
    )
    with borrowed as c, c.cursor() as cur:
        cur.execute(
            "INSERT INTO dead_letters (task_id, task_name, queue, args, kwargs, headers,"
            " exception_type, exception, traceback, category, severity, retries, replay_of)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            "  (SELECT id FROM dead_letters WHERE id = %s)) RETURNING id",
            (
                task_id,
                task_name,
                queue,
                Json(list(args or [])),
                Json(dict(kwargs or {})),
                Json(headers),
                type(exc).__name__,
                str(exc)[:4000],
                traceback,
                classification.category,
                classification.severity.name.lower(),
                retries,
                replay_of if isinstance(replay_of, int) else None,
            ),
        )
        (entry_id,) = db.fetch_one(cur)
    return int(entry_id)


def restore(key: str, entry: dict[str, Any]) -> int:
    """Store one entry kept in Redis (:mod:`~celeryref.reliability.dead_letters.unrecorded`)
    under ``key``; return its id. An entry stored before under ``key`` is not stored again."""
    replay_of = (entry.get("headers") or {}).get(REPLAY_HEADER)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO dead_letters (record_key, task_id, task_name, queue, args, kwargs,"
            " headers, exception_type, exception, traceback, category, severity, retries,"
            " failed_at, replay_of)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, COALESCE(%s, now()),"
            "  (SELECT id FROM dead_letters WHERE id = %s))"
            " ON CONFLICT (record_key) DO NOTHING",
            (
                key,
                entry["task_id"],
                entry["task_name"],
                entry.get("queue"),
                Json(list(entry.get("args") or [])),
                Json(dict(entry.get("kwargs") or {})),
                Json(entry.get("headers") or {}),
                entry["exception_type"],
                str(entry["exception"])[:4000],
                entry.get("traceback"),
                entry["category"],
                entry["severity"],
                int(entry.get("retries") or 0),
                entry.get("failed_at"),
                replay_of if isinstance(replay_of, int) else None,
            ),
        )
        cur.execute("SELECT id FROM dead_letters WHERE record_key = %s", (key,))
        (entry_id,) = db.fetch_one(cur)
    return int(entry_id)


def _row(row: dict[str, Any]) -> DeadLetter:
    return DeadLetter(**row)


def list_entries(limit: int = 50, task_name: str | None = None) -> list[DeadLetter]:
    """Newest first, at most ``limit``, optionally of one task."""
    with db.connection() as conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM dead_letters"  # noqa: S608 - constant column list
            " WHERE %(name)s::text IS NULL OR task_name = %(name)s"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"name": task_name, "limit": limit},
        )
        return [_row(r) for r in cur.fetchall()]


def get(entry_id: int) -> DeadLetter:
    with db.connection() as conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = %s", (entry_id,))  # noqa: S608
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no dead letter with id {entry_id}")
    return _row(row)


def replay(app: Celery, entry_id: int, *, force: bool = False) -> str:
    """Re-send entry ``entry_id`` with its arguments; return the new task id.

    An entry already replayed is refused unless ``force``: one fix, one replay.
    """
    entry = get(entry_id)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE dead_letters SET replayed_at = now() WHERE id = %s"
            " AND (replayed_at IS NULL OR %s) RETURNING id",
            (entry_id, force),
        )
        if cur.fetchone() is None:
            raise InvalidArguments(
                f"dead letter {entry_id} was already replayed as {entry.replay_task_id}"
            )
        headers = {k: v for k, v in entry.headers.items() if k != REPLAY_HEADER}
        result = app.send_task(
            entry.task_name,
            args=entry.args,
            kwargs=entry.kwargs,
            queue=entry.queue,
            headers={**headers, REPLAY_HEADER: entry_id},
        )
        cur.execute(
            "UPDATE dead_letters SET replay_task_id = %s WHERE id = %s", (result.id, entry_id)
        )
    return str(result.id)


def purge(*, entry_ids: list[int] | None = None, older_than_days: float | None = None) -> int:
    """Delete the given entries, or those older than ``older_than_days``; return the count."""
    if entry_ids is None and older_than_days is None:
        raise InvalidArguments("purge needs entry ids or an age (older_than_days)")
    with db.connection() as conn, conn.cursor() as cur:
        if entry_ids is not None:
            cur.execute("DELETE FROM dead_letters WHERE id = ANY(%s)", (entry_ids,))
        elif older_than_days is not None:
            cur.execute(
                "DELETE FROM dead_letters WHERE failed_at < now() - make_interval(secs => %s)",
                (older_than_days * 86400,),
            )
        return int(cur.rowcount)
