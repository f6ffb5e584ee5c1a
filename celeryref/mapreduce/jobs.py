"""Start map-reduce jobs and read their status (the client side; not a task).

:func:`start` checks everything that can be checked before any work is queued
(function name, options, expressions, dataset, plan), commits the job row
(unpublished) with the client's idempotency key (F18), then :func:`dispatch` sends
``chord([map_partition(job, i, start, end) ...], reduce_job(job))`` with
:func:`~celeryref.tasks.cpu_intensive.mapreduce.record_job_failure` as the body's
errback, naming the tasks (this module never imports task modules), and marks the
job published under its row lock. It returns at once; :func:`status` reads progress
from Postgres.

F17: a dispatch that fails withdraws the job (deleted unless the sweeper published it
meanwhile), so the API's 503 "nothing was accepted" is true; a job committed but
never published (the process died, the withdrawal failed too) is dispatched by the
sweeper (:mod:`celeryref.mapreduce.recovery`). A chord sent twice is harmless: a map
replaces its partial, the reducer of a finished job does nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from celery import chord

from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.mapreduce import planning, store
from celeryref.mapreduce.functions import prepare
from celeryref.submission import client_keys

#: The map-reduce tasks, by name (``celeryref.tasks.cpu_intensive.mapreduce``).
MAP_PARTITION = "celeryref.tasks.cpu_intensive.mapreduce.map_partition"
REDUCE_JOB = "celeryref.tasks.cpu_intensive.mapreduce.reduce_job"
RECORD_JOB_FAILURE = "celeryref.tasks.cpu_intensive.mapreduce.record_job_failure"


def start(
    dataset: str,
    function: str,
    options: Mapping[str, Any] | None = None,
    *,
    partitions: int | None = None,
    partition_size: int | None = None,
    client_key: str | None = None,
) -> str:
    """Queue a job over ``dataset`` and return its id (raises ``InvalidArguments``).

    With ``client_key``: at most one job per key; a repeat returns the first job's id."""
    checked = prepare(function, options)
    found = store.get_dataset(dataset)
    plan = planning.plan(found.item_count, partitions, partition_size)
    job_id = str(uuid.uuid4())
    with db.connection() as conn, conn.cursor() as cur:
        if client_key is not None:
            request = [dataset, checked.name, checked.options, partitions, partition_size]
            printed = client_keys.fingerprint("job", request)
            first = client_keys.claim(cur, client_key, "job", job_id, printed)
            if first is not None:
                return first
        store.create_job(job_id, found, checked.name, checked.options, len(plan), cur)
    try:
        dispatch(job_id)
    except Exception:
        with db.connection() as conn, conn.cursor() as cur:
            withdrawn = store.withdraw_unpublished(cur, job_id)
            if withdrawn:
                client_keys.forget(cur, client_key, job_id)
        if withdrawn:
            raise
    return job_id


def dispatch(job_id: str, *, sweeping: bool = False) -> bool:
    """Send the chord of an unpublished job and mark it published; ``False`` if there was
    nothing to send (published, final, gone, or, ``sweeping``, locked by its starter)."""
    with db.connection() as conn, conn.cursor() as cur:
        job = store.lock_unpublished(cur, job_id, skip_locked=sweeping)
        if job is None:
            return False
        partitions_total, items_total, reduce_task_id = job
        plan = planning.plan(items_total, partitions=partitions_total or None)
        body = reduce_signature(job_id, reduce_task_id)
        if plan:
            header = [
                app.signature(MAP_PARTITION, args=(job_id, p.index, p.start, p.end), immutable=True)
                for p in plan
            ]
            result = chord(header)(body)
        else:  # an empty dataset: nothing to map, the reducer stores the empty result
            result = body.apply_async(([],))
        store.mark_published(cur, job_id, result.id)
    return True


def reduce_signature(job_id: str, task_id: str) -> Any:
    """The chord body (``reduce_job``) with its errback and a fixed task id."""
    on_error = app.signature(RECORD_JOB_FAILURE, kwargs={"job_id": job_id})
    return app.signature(REDUCE_JOB, args=(job_id,), task_id=task_id).on_error(on_error)


def status(job_id: str) -> dict[str, Any]:
    """Status, progress (``partitions_done``/``partitions_total``, ``percent``) and result."""
    return store.job_status(job_id)


def is_final(job_status: Mapping[str, Any]) -> bool:
    return job_status["status"] in (store.SUCCEEDED, store.FAILED)
