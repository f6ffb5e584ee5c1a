"""Start map-reduce jobs and read their status (the client side; not a task).

:func:`start` checks everything that can be checked before any work is queued
(function name, options, expressions, dataset, plan), inserts the job row, then
dispatches ``chord([map_partition(job, i, start, end) ...], reduce_job(job))``
with :func:`~celeryref.tasks.cpu_intensive.mapreduce.record_job_failure` as the
body's errback, naming the tasks (this module never imports task modules). It
returns at once; :func:`status` reads progress from Postgres.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from celery import chord

from celeryref.celery_app import app
from celeryref.mapreduce import planning, store
from celeryref.mapreduce.functions import prepare

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
) -> str:
    """Queue a job over ``dataset`` and return its id (raises ``InvalidArguments``)."""
    checked = prepare(function, options)
    found = store.get_dataset(dataset)
    plan = planning.plan(found.item_count, partitions, partition_size)
    job_id = str(uuid.uuid4())
    store.create_job(job_id, found, checked.name, checked.options, len(plan))
    on_error = app.signature(RECORD_JOB_FAILURE, kwargs={"job_id": job_id})
    body = app.signature(REDUCE_JOB, args=(job_id,)).on_error(on_error)
    if plan:
        header = [
            app.signature(MAP_PARTITION, args=(job_id, p.index, p.start, p.end), immutable=True)
            for p in plan
        ]
        result = chord(header)(body)
    else:  # an empty dataset: nothing to map, the reducer stores the empty result
        result = body.apply_async(([],))
    store.set_reduce_task(job_id, result.id)
    return job_id


def status(job_id: str) -> dict[str, Any]:
    """Status, progress (``partitions_done``/``partitions_total``, ``percent``) and result."""
    return store.job_status(job_id)


def is_final(job_status: Mapping[str, Any]) -> bool:
    return job_status["status"] in (store.SUCCEEDED, store.FAILED)
