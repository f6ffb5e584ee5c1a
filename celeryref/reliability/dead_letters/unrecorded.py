"""Dead letters Postgres could not take: kept in a Redis list, moved into the store later.

:func:`keep` pushes an entry (JSON, with a unique ``key``) onto :data:`UNRECORDED_KEY`;
:func:`drain` moves the entries into Postgres (:func:`.store.restore`), oldest first,
one drainer at a time (a lease in Redis). An entry leaves Redis only after its insert
committed, and the insert is keyed: a drain that dies between the two inserts nothing
the next time, it only removes the entry. An entry that cannot be read stays in Redis
(logged), never dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from celeryref.adapters import redis_state
from celeryref.reliability.dead_letters import store

logger = logging.getLogger(__name__)

#: Redis list holding dead letters that could not be written to Postgres (newest first).
UNRECORDED_KEY = redis_state.key("dead_letters", "unrecorded")
#: Lease that lets one drain run at a time.
DRAIN_LEASE_KEY = redis_state.key("dead_letters", "drain_lease")
#: Seconds a drain holds its lease; a drain that died frees it after this long.
DRAIN_LEASE_SECONDS = 120
#: Entries moved per drain (the next run takes the rest).
DRAIN_BATCH = 500


def keep(entry: dict[str, Any]) -> None:
    """Push ``entry`` (the fields of :func:`.store.restore`) onto the Redis list."""
    entry = {**entry, "key": uuid.uuid4().hex, "failed_at": datetime.now(UTC).isoformat()}
    redis_state.client().lpush(UNRECORDED_KEY, json.dumps(entry, default=str))


def pending() -> int:
    """How many entries wait in Redis."""
    return int(redis_state.client().llen(UNRECORDED_KEY))


@contextmanager
def _lease() -> Iterator[bool]:
    client = redis_state.client()
    token = uuid.uuid4().hex
    held = bool(client.set(DRAIN_LEASE_KEY, token, nx=True, ex=DRAIN_LEASE_SECONDS))
    try:
        yield held
    finally:
        if held and client.get(DRAIN_LEASE_KEY) == token.encode():
            client.delete(DRAIN_LEASE_KEY)


def _parse(raw: bytes) -> tuple[str, dict[str, Any]]:
    """The entry's key and its fields; entries written before keys existed get one from
    their bytes (the same entry, the same key)."""
    entry: dict[str, Any] = json.loads(raw)
    if not isinstance(entry, dict) or not entry.get("task_id") or not entry.get("task_name"):
        raise ValueError("not a dead letter")
    key = entry.get("key") or hashlib.sha256(raw).hexdigest()
    if "exception_type" not in entry:  # older format: "Type: message", a category only
        exc_type, _, message = str(entry.get("exc", "")).partition(": ")
        entry.update(
            exception_type=exc_type or "Exception",
            exception=message,
            category=entry.get("classification") or "unexpected",
            severity="high",
        )
    return str(key), entry


def drain(batch: int = DRAIN_BATCH) -> list[int] | None:
    """Move up to ``batch`` entries into Postgres; return the ids of the entries moved
    (up to the first that Postgres refused), or ``None`` when another drain holds the lease."""
    client = redis_state.client()
    with _lease() as held:
        if not held:
            return None
        moved: list[int] = []
        for raw in reversed(client.lrange(UNRECORDED_KEY, -batch, -1)):  # oldest first
            try:
                key, entry = _parse(raw)
            except (ValueError, TypeError, AttributeError):
                logger.exception("unreadable dead letter kept in Redis: %r", raw[:200])
                continue
            try:
                moved.append(store.restore(key, entry))  # committed before it leaves Redis
            except Exception:
                logger.exception("dead-letter store unavailable; %d entries wait", pending())
                break
            client.lrem(UNRECORDED_KEY, 1, raw)
        return moved
