"""Map-reduce tasks (SPEC F8) on the ``cpu_intensive`` queue; started by
:func:`celeryref.mapreduce.jobs.start` as ``chord(map_partition..., reduce_job)``.

Only references travel through the broker and the result backend: a map task
returns ``{"job_id", "partition", "items"}`` and the reducer reads the partials
from Postgres. No task waits on another (no ``.get()``): the chord calls the
reducer when every map has finished.

Failure: a map that fails for good marks the job failed at once (``on_failure``),
so maps still queued skip their work; the chord then does not call the reducer
but the body's errback :func:`record_job_failure`, which also covers a failing
reducer. A map that runs again (retry, redelivery after its process was killed)
replaces its partial, so nothing is counted twice. A reducer sent again (the
sweep's, :mod:`celeryref.mapreduce.recovery`, F17) finds its job final and returns.
"""

from __future__ import annotations

import logging
from typing import Any

from celeryref.celery_app import app
from celeryref.errors import InvalidArguments, PermanentError
from celeryref.mapreduce import planning, store
from celeryref.mapreduce.functions import prepare
from celeryref.reliability.retry import RetryPolicy
from celeryref.reliability.task_base import BaseTask

logger = logging.getLogger(__name__)

#: Transient failures (database restarts) of one partition: a few quick retries.
MAP_RETRY = RetryPolicy(max_retries=3, base_delay=2.0, max_delay=60.0)


class MapTask(BaseTask):
    """A map task whose final failure fails its job immediately."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        super().on_failure(exc, task_id, args, kwargs, einfo)
        job_id = args[0] if args else (kwargs or {}).get("job_id")
        try:
            store.fail_job(str(job_id), f"map {task_id} failed: {type(exc).__name__}: {exc}")
        except Exception:
            logger.exception("could not mark map-reduce job %s failed", job_id)


def check_partition(job: store.Job, partition_index: int, start: int, end: int) -> None:
    """Refuse a range that is not the job's planned partition (overlaps would double count)."""
    planned = planning.plan(job.items_total, partitions=job.partitions_total or None)
    expected = planned[partition_index] if 0 <= partition_index < len(planned) else None
    if expected is None or (expected.start, expected.end) != (start, end):
        raise InvalidArguments(
            f"job {job.id}: partition {partition_index} [{start}, {end}) is not in its plan"
        )


@app.task(bind=True, base=MapTask, retry_policy=MAP_RETRY)
def map_partition(
    self: Any, job_id: str, partition_index: int, start: int, end: int
) -> dict[str, Any]:
    """Fold items ``[start, end)`` into the job's partial ``partition_index``."""
    job = store.get_job(job_id)
    ref = {"job_id": job.id, "partition": partition_index}
    if job.status == store.FAILED:
        logger.info("job %s failed already: partition %d skipped", job.id, partition_index)
        return {**ref, "items": 0, "skipped": True}
    check_partition(job, partition_index, start, end)
    function = prepare(job.function, job.options)
    with store.partition_items(job.dataset_id, start, end) as items:
        partial = function.map(items)
    if partial["items"] != end - start:
        raise PermanentError(
            f"dataset {job.dataset_id} has {partial['items']} items in [{start}, {end}),"
            f" expected {end - start}: its indexes are not dense"
        )
    progress = store.save_partial(job.id, planning.Partition(partition_index, start, end), partial)
    logger.info(
        "job %s partition %d: %d items; %d/%d partitions done",
        job.id,
        partition_index,
        partial["items"],
        progress.partitions_done,
        progress.partitions_total,
    )
    return {**ref, "items": partial["items"]}


@app.task(bind=True)
def reduce_job(self: Any, partial_refs: list[dict[str, Any]], job_id: str) -> dict[str, Any]:
    """Chord body: combine the job's partials from Postgres and store the result."""
    job = store.get_job(job_id)
    if job.status in (store.SUCCEEDED, store.FAILED):  # sent twice: the first one decided
        logger.info("job %s is %s already: reducer not run again", job.id, job.status)
        return {"job_id": job.id, "status": job.status, "items": job.items_total}
    reported = sorted(int(ref["partition"]) for ref in partial_refs or [])
    if reported != list(range(job.partitions_total)):
        raise PermanentError(f"job {job.id}: maps reported partitions {reported[:20]}")
    function = prepare(job.function, job.options)
    combined = function.combine([])
    seen = 0
    with store.job_partials(job.id) as rows:  # streamed: folded, never all in memory
        for row in rows:
            if row.partition.index != seen:
                raise PermanentError(f"job {job.id}: partition {seen} has no partial")
            combined = function.combine([combined, row.partial])
            seen += 1
    if seen != job.partitions_total:
        raise PermanentError(f"job {job.id}: partition {seen} has no partial")
    if combined["items"] != job.items_total:
        raise PermanentError(
            f"job {job.id}: partials cover {combined['items']} of {job.items_total} items"
        )
    result = function.finalize(combined)
    store.finish_job(job.id, job.dataset_id, job.function, job.items_total, result)
    logger.info("job %s succeeded: %d items", job.id, job.items_total)
    return {"job_id": job.id, "status": store.SUCCEEDED, "items": job.items_total}


@app.task
def record_job_failure(request: Any, exc: BaseException, traceback: Any, job_id: str) -> None:
    """Errback of the chord body: the header or the reducer failed; record it on the job."""
    if store.fail_job(job_id, f"{type(exc).__name__}: {exc}"):
        logger.error("map-reduce job %s failed: %s", job_id, exc)
