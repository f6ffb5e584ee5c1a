"""Idempotent tasks: one key, one run of the side effect, the stored result for repeats.

Why Postgres and a unique key rather than a Redis lock: the claim and the stored
result must outlive restarts of any container, and the primary key makes "two
concurrent runs both proceed" impossible without any lock expiry to tune. A run
holds its key for ``lease`` seconds, :func:`lease_for` its *own* hard time limit (the
message's or the task's ``time_limit``, else ``TASK_TIME_LIMIT``: F24), so a run whose
process died is taken over soon after its limit, while a live one never is.

Guarantee: a key's side effect completes at most once per *successful* run; if a
process dies, or the run fails (a database outage, a transient error), after the
side effect but before :func:`complete`, the effect runs again on the takeover or
the retry (at-least-once). When the effect is a Postgres write, complete the key in
the same transaction (``self.complete_idempotency_key(cur, result)`` in the task,
:meth:`celeryref.reliability.task_base.BaseTask.complete_idempotency_key`): then the effect and the
completion commit or vanish together, and the effect lands exactly once.

The key is ``<task name>:<sha256 of the canonical JSON of args and kwargs>``, or
the caller's own key (header ``idempotency_key``). Results are stored as JSON,
never pickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import Json

from celeryref.adapters import db
from celeryref.errors import DuplicateInProgress, InvalidArguments
from celeryref.settings import settings

#: Message header carrying a caller-chosen key.
HEADER = "idempotency_key"
#: Longest caller-supplied key accepted (characters).
MAX_KEY_LENGTH = 200
#: Seconds a lease outlasts the run's hard time limit: the dead letter of a killed run
#: is written, and a thread-pool task past its limit finishes its last I/O call
#: (:mod:`celeryref.reliability.time_budget`), before another run may take the key.
LEASE_GRACE_SECONDS = 30.0


def lease_for(time_limit: float | None) -> float:
    """Seconds a run holds its key: its hard time limit (``None``: ``TASK_TIME_LIMIT``)
    plus :data:`LEASE_GRACE_SECONDS`."""
    return float(time_limit or settings.task_time_limit) + LEASE_GRACE_SECONDS


def derive_key(task_name: str, args: Any, kwargs: Any) -> str:
    """A key from the task name and its arguments (order of kwargs irrelevant)."""
    canonical = json.dumps([args, kwargs], sort_keys=True, separators=(",", ":"), default=str)
    return f"{task_name}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def validate_key(key: object) -> str:
    """A caller's key, checked: a non-empty printable string of bounded length."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidArguments(f"idempotency key must be 1..{MAX_KEY_LENGTH} printable chars")
    return key


@dataclass(frozen=True)
class Claim:
    """Outcome of :func:`claim`: run the task now, or return ``result`` stored earlier."""

    acquired: bool
    result: Any = None


def claim(key: str, task_name: str, task_id: str, lease: float) -> Claim:
    """Take ``key`` for ``task_id``, or return the stored result of an earlier run.

    Raises :class:`~celeryref.errors.DuplicateInProgress` (transient: retried) when
    another live run holds the key.
    """
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO idempotency_keys (key, task_name, owner_task_id, state, locked_until)
            VALUES (%(key)s, %(name)s, %(id)s, 'running', now() + make_interval(secs => %(lease)s))
            ON CONFLICT (key) DO UPDATE
              SET owner_task_id = EXCLUDED.owner_task_id, locked_until = EXCLUDED.locked_until
              WHERE idempotency_keys.state = 'running'
                AND (idempotency_keys.locked_until < now()
                     OR idempotency_keys.owner_task_id = EXCLUDED.owner_task_id)
            RETURNING owner_task_id
            """,
            {"key": key, "name": task_name, "id": task_id, "lease": lease},
        )
        if cur.fetchone() is not None:
            return Claim(acquired=True)
        cur.execute(
            "SELECT state, result, owner_task_id FROM idempotency_keys WHERE key = %s", (key,)
        )
        state, result, owner = db.fetch_one(cur)
    if state == "succeeded":
        return Claim(acquired=False, result=result)
    raise DuplicateInProgress(f"idempotency key {key!r} is being run by task {owner}")


_COMPLETE = (
    "UPDATE idempotency_keys SET state = 'succeeded', result = %s, completed_at = now()"
    " WHERE key = %s AND owner_task_id = %s"
)


def complete(key: str, task_id: str, result: Any, cursor: Any = None) -> None:
    """Store ``result`` (JSON) for ``key``; later claims return it.

    With ``cursor`` the update runs in that cursor's transaction (the task's own, so
    the completion commits with the task's effect); without, in a transaction of its
    own. Completing twice with the same owner is harmless.
    """
    params = (Json(result), key, task_id)
    if cursor is not None:
        cursor.execute(_COMPLETE, params)
        return
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(_COMPLETE, params)


def release(key: str, task_id: str) -> None:
    """Give up a running claim after a failure, so a retry or replay may run it."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE key = %s AND owner_task_id = %s"
            " AND state = 'running'",
            (key, task_id),
        )
