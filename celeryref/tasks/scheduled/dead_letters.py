"""Dead letters kept in Redis while Postgres was away go into the store (F21).

Beat fires :func:`drain_unrecorded` every minute, and every worker sends it once at
start when entries wait; the work is :func:`celeryref.reliability.dead_letters.unrecorded.drain`.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from celeryref import queues
from celeryref.celery_app import app
from celeryref.errors import Classification, Severity
from celeryref.reliability.dead_letters import record, unrecorded
from celeryref.reliability.retry import RetryPolicy

logger = logging.getLogger(__name__)

#: How the recovery alert is reported.
RECOVERED = Classification(False, Severity.HIGH, "dead_letters_recovered")


@app.task(bind=True, retry_policy=RetryPolicy(max_retries=0), alert_on_dead_letter=False)
def drain_unrecorded(self: Any) -> dict[str, Any]:
    """Move the Redis list's dead letters into Postgres; alert once per batch moved."""
    moved = unrecorded.drain()
    if moved is None:
        return {"moved": [], "skipped": "another drain is running"}
    if moved:
        shown = ", ".join(f"#{i}" for i in moved[:20]) + (" …" if len(moved) > 20 else "")
        body = (
            f"{len(moved)} dead letters written while Postgres was unavailable were kept in "
            f"Redis and are now in the store: {shown}"
        )
        record.alert(self, f"{len(moved)} dead letters recovered", body, RECOVERED, moved[0])
    return {"moved": moved, "waiting": unrecorded.pending()}


@signals.worker_ready.connect
def _drain_at_start(sender: Any = None, **_: Any) -> None:
    """A worker starting after an outage sends the drain at once, if anything waits."""
    try:
        if unrecorded.pending():
            drain_unrecorded.apply_async(queue=queues.SCHEDULED)
    except Exception:
        logger.exception("could not check for dead letters kept in Redis")
