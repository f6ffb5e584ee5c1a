"""Client idempotency keys (F18): one key, one submission, whatever the client resends.

A client that sends ``idempotency_key`` with ``POST /tasks``, ``/workflows`` or
``/jobs`` gets at most one task, execution or job per key: the key's row in
``client_submissions`` names the id it created, and a repeat returns that id (202
with the same body), also while the first is still queued or running. The same key
with a different request (another task, other arguments) is refused with a 422
naming the key, since answering with the first id would hide the client's mistake.

Why Postgres and not the worker-side ``idempotency_keys`` of
:mod:`celeryref.reliability.idempotency`: that table makes a *task body* run once per
key when the task is written for it (``idempotent=True``); no catalog task is, and a
key must stop the second *submission*, before anything reaches the broker. The
primary key decides between two concurrent posts of one key: the second ``INSERT``
waits for the first transaction and then sees its row.

The row is written in the transaction that creates the submission (the execution's
or job's row; for a catalog task, the transaction that commits once its message is on
the broker), so a key never names something that was not accepted. Keys are kept
``RESULT_EXPIRES`` seconds (the sweeper prunes older ones), as long as a task's
result can be read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from psycopg2 import extensions

from celeryref.errors import InvalidArguments
from celeryref.reliability.idempotency import validate_key


def fingerprint(kind: str, request: Any) -> str:
    """sha256 of the canonical JSON of what was asked (the same request, the same print)."""
    canonical = json.dumps([kind, request], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(cur: extensions.cursor, key: str, kind: str, target_id: str, printed: str) -> str | None:
    """Take ``key`` for ``target_id`` in ``cur``'s transaction; ``None`` when taken now,
    else the id the key already names (``InvalidArguments`` if for another request)."""
    key = validate_key(key)
    cur.execute(
        "INSERT INTO client_submissions (client_key, kind, target_id, fingerprint)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (client_key) DO NOTHING",
        (key, kind, target_id, printed),
    )
    if cur.rowcount:
        return None
    cur.execute(
        "SELECT kind, target_id, fingerprint FROM client_submissions WHERE client_key = %s",
        (key,),
    )
    row = cur.fetchone()
    if row is None:  # withdrawn by its first submitter between the two statements
        raise InvalidArguments(f"idempotency key {key!r} is being withdrawn; send it again")
    first_kind, first_id, first_print = row
    if (first_kind, first_print) != (kind, printed):
        raise InvalidArguments(
            f"idempotency key {key!r} was already used for a different request"
            f" ({first_kind} {first_id}); use a new key for a new request"
        )
    return str(first_id)


def forget(cur: extensions.cursor, key: str | None, target_id: str) -> None:
    """Drop ``key`` if it names ``target_id`` (its submission was withdrawn)."""
    if key is not None:
        cur.execute(
            "DELETE FROM client_submissions WHERE client_key = %s AND target_id = %s",
            (key, target_id),
        )


def prune(cur: extensions.cursor, older_than: float) -> int:
    """Delete keys older than ``older_than`` seconds; how many."""
    cur.execute(
        "DELETE FROM client_submissions"
        " WHERE created_at < clock_timestamp() - make_interval(secs => %s)",
        (older_than,),
    )
    return int(cur.rowcount)
