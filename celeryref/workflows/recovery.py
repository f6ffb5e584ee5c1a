"""The workflow half of the sweep (F17): publish steps committed but never published.

A step is queued and its message published in two transactions (the engine's
outbox, :mod:`celeryref.workflows.engine`). A process that dies between them, or a
publish that fails after the commit (the broker restarting), leaves the step
``queued`` with ``published_at IS NULL``; before this sweep only a redelivery of the
step that queued it (up to the visibility timeout, an hour) published it, and a start
that died between its commit and its publish left the execution stuck for good.

:func:`sweep` publishes every such step queued more than ``older_than`` seconds ago
(longer than a publish takes, so a publisher still at work is never raced; it holds
the steps' row locks anyway), under the execution's row lock taken with ``SKIP
LOCKED``. A step whose publish did reach the broker but was not marked is sent twice;
the dispatch id in its message makes the second one a no-op (see the engine).

Nothing else can leave an execution stuck: a step finishing, failing or being
cancelled changes the execution in the same transaction, and a step whose worker
died is redelivered by the broker (``acks_late``).
"""

from __future__ import annotations

import logging

from celeryref.adapters import db
from celeryref.workflows import engine, step_rows

logger = logging.getLogger(__name__)

#: Executions published per sweep at most (the next sweep takes the rest).
SWEEP_BATCH = 500


def sweep(older_than: float) -> int:
    """Publish steps unpublished for more than ``older_than`` seconds; how many were sent."""
    with db.connection() as conn, conn.cursor() as cur:
        executions = step_rows.stale_unpublished(cur, older_than, SWEEP_BATCH)
    sent = 0
    for execution_id in executions:
        published = engine.publish(execution_id, sweeping=True)
        if published:
            logger.warning(
                "sweep: execution %s had %d step(s) committed but unpublished; published",
                execution_id,
                published,
            )
        sent += published
    return sent
