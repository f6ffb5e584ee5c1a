"""The map-reduce half of the sweep (F17): jobs never published, and reducers never run.

Two holes leave a job ``pending``/``running`` with nothing on its way:

* committed but never published: the starter died between its commit and its
  publish (or the publish failed and so did the withdrawal). :func:`sweep` dispatches
  the job's chord, under its row lock taken with ``SKIP LOCKED``.
* every partial stored, no reducer: the chord calls its body when the last map's
  *result* reaches the backend; a process that dies after the last partial committed
  but before that never calls it, and only the map's redelivery (after the visibility
  timeout, an hour) would. :func:`sweep` sends ``reduce_job`` itself (the chord body's
  task id and errback) for a job whose partitions are all done and which has not
  changed for ``stuck_after`` seconds, and touches the job so the next send waits as long.

Both may send twice what was sent once: maps replace their partial and the reducer
of a finished job returns without writing (``reduce_job``), so nothing is done twice.
"""

from __future__ import annotations

import logging

from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.mapreduce import jobs

logger = logging.getLogger(__name__)

#: Jobs handled per sweep and kind at most (the next sweep takes the rest).
SWEEP_BATCH = 200


def sweep(older_than: float, stuck_after: float) -> tuple[int, int]:
    """Dispatch jobs unpublished for ``older_than`` s; reduce jobs whose maps are all done
    and unchanged for ``stuck_after`` s. ``(dispatched, reduced)``."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id::text FROM mapreduce_jobs WHERE published_at IS NULL"
            " AND status IN ('pending', 'running')"
            " AND created_at < clock_timestamp() - make_interval(secs => %s) LIMIT %s",
            (older_than, SWEEP_BATCH),
        )
        unpublished = [str(job_id) for (job_id,) in cur.fetchall()]
    dispatched = sum(jobs.dispatch(job_id, sweeping=True) for job_id in unpublished)
    if dispatched:
        logger.warning("sweep: dispatched %d map-reduce job(s) never published", dispatched)
    return dispatched, _reduce_stuck(stuck_after)


def _reduce_stuck(stuck_after: float) -> int:
    sent = 0
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id::text, partitions_total, reduce_task_id FROM mapreduce_jobs"
            " WHERE status IN ('pending', 'running') AND published_at IS NOT NULL"
            " AND partitions_done = partitions_total"
            " AND updated_at < clock_timestamp() - make_interval(secs => %s)"
            " LIMIT %s FOR UPDATE SKIP LOCKED",
            (stuck_after, SWEEP_BATCH),
        )
        for job_id, total, task_id in cur.fetchall():
            refs = [{"job_id": job_id, "partition": index} for index in range(total)]
            body = jobs.reduce_signature(job_id, task_id or app.uuid())
            body.apply_async((refs,))
            cur.execute(
                "UPDATE mapreduce_jobs SET updated_at = clock_timestamp() WHERE id = %s",
                (job_id,),
            )
            logger.warning("sweep: job %s has every partial but no result; reducer sent", job_id)
            sent += 1
    return sent
