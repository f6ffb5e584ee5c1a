"""The outbox sweep (F17), fired by beat on the ``scheduled`` queue.

See :mod:`celeryref.reliability.outbox` for what it guarantees and why; the work is in
:mod:`celeryref.workflows.recovery` and :mod:`celeryref.mapreduce.recovery`.
"""

from __future__ import annotations

import logging
from typing import Any

from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.mapreduce import recovery as mapreduce_recovery
from celeryref.reliability import outbox
from celeryref.settings import settings
from celeryref.submission import client_keys
from celeryref.workflows import recovery as workflow_recovery

logger = logging.getLogger(__name__)

#: Name of the lease one sweep holds at a time.
LEASE = "outbox-sweep"


@app.task
def sweep_outbox(
    older_than: float | None = None, stuck_after: float | None = None
) -> dict[str, Any]:
    """Publish what was committed but never published; reduce finished-but-stuck jobs;
    prune expired client keys. Skipped (``{"skipped": True}``) while another sweep runs."""
    grace = settings.outbox_grace_seconds if older_than is None else older_than
    stuck = settings.outbox_stuck_seconds if stuck_after is None else stuck_after
    # The lease outlives any sweep (one publish per row, a few seconds at worst).
    with outbox.lease(LEASE, settings.task_time_limit) as taken:
        if not taken:
            return {"skipped": True}
        steps = workflow_recovery.sweep(grace)
        jobs, reduced = mapreduce_recovery.sweep(grace, stuck)
        with db.connection() as conn, conn.cursor() as cur:
            pruned = client_keys.prune(cur, settings.result_expires)
    return {"steps": steps, "jobs": jobs, "reduced": reduced, "keys_pruned": pruned}
