"""``batch_process_users``: activate, deactivate or delete users in batches, via canvas.

The task validates its input and replaces itself with a chord: one
``process_user_batch`` per batch (each batch one transaction), then
``summarize_user_batches`` adds up the counts. Nothing waits inside a task; the
caller's result is the summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import chord, group

from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.errors import InvalidArguments

#: What a batch can do to a user.
ACTIONS = ("activate", "deactivate", "delete")
#: Most users of one call, and most users per batch.
MAX_USERS, MAX_BATCH = 100_000, 1_000


def check(action: object, user_ids: object, batch_size: object = 1) -> list[int]:
    """The ids, after checking all three arguments."""
    if action not in ACTIONS:
        raise InvalidArguments(f"action must be one of {ACTIONS}, got {action!r}")
    if not isinstance(user_ids, list | tuple) or not 0 < len(user_ids) <= MAX_USERS:
        raise InvalidArguments(f"user_ids must be a list of 1..{MAX_USERS} ids")
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in user_ids):
        raise InvalidArguments("user_ids must be positive integers")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise InvalidArguments("batch_size must be an integer")
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidArguments(f"batch_size must be in 1..{MAX_BATCH}")
    return sorted(set(user_ids))


def batches(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def apply_action(action: str, ids: Sequence[int]) -> list[int]:
    """Change the users ``ids`` in one transaction; the ids actually changed."""
    with db.connection() as conn, conn.cursor() as cur:
        if action == "delete":
            cur.execute("DELETE FROM users WHERE id = ANY (%s) RETURNING id", (list(ids),))
        else:
            status = "active" if action == "activate" else "inactive"
            cur.execute(
                "UPDATE users SET status = %s, updated_at = now()"
                " WHERE id = ANY (%s) AND status <> %s RETURNING id",
                (status, list(ids), status),
            )
        return sorted(row[0] for row in cur.fetchall())


@app.task
def process_user_batch(action: str, user_ids: list[int]) -> dict[str, Any]:
    """One batch; users already in the target state (or missing) are left alone."""
    ids = check(action, user_ids)
    changed = apply_action(action, ids)
    return {"action": action, "requested": len(ids), "changed": len(changed)}


@app.task
def summarize_user_batches(results: list[dict[str, Any]], action: str) -> dict[str, Any]:
    """Totals over the batches of one ``batch_process_users`` call."""
    return {
        "action": action,
        "batches": len(results),
        "requested": sum(r["requested"] for r in results),
        "changed": sum(r["changed"] for r in results),
    }


@app.task(bind=True)
def batch_process_users(self: Any, action: str, user_ids: list[int], batch_size: int = 100) -> Any:
    """Apply ``action`` to ``user_ids`` in batches of ``batch_size`` (a chord)."""
    ids = check(action, user_ids, batch_size)
    header = group(process_user_batch.s(action, batch) for batch in batches(ids, batch_size))
    return self.replace(chord(header, summarize_user_batches.s(action)))
