"""Postgres side of map-reduce: datasets, jobs, partials, results.

Reading is streamed: :func:`partition_items` walks one partition through a
server-side (named) cursor, :data:`FETCH_ROWS` rows per round trip, so a worker
holds one batch, never a whole partition. Writing is idempotent:
:func:`save_partial` upserts the ``(job, partition)`` row and recomputes the job's
progress from the partials table under the job's row lock, so a map task that
runs twice leaves exactly one partial and the same counters. A job is created
unpublished, in its submitter's transaction, and marked published with its chord
(F17; :mod:`celeryref.mapreduce.jobs`, :mod:`celeryref.mapreduce.recovery`).

Longer than 250 lines: every statement on the job tables, whose row lock orders
them, is in this one module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg2 import extensions
from psycopg2.extras import Json, RealDictCursor

from celeryref.adapters import db
from celeryref.errors import InvalidArguments, NotFound
from celeryref.mapreduce.planning import Partition

#: Rows fetched per round trip of the server-side cursor (~250 bytes each).
FETCH_ROWS = 5_000
#: Partials read per round trip by the reducer.
FETCH_PARTIALS = 100

#: Job states; ``succeeded`` and ``failed`` are final.
PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str
    item_count: int


@dataclass(frozen=True)
class Job:
    id: str
    dataset_id: int
    function: str
    options: dict[str, Any]
    status: str
    partitions_total: int
    partitions_done: int
    items_total: int
    items_processed: int
    error: str | None


@dataclass(frozen=True)
class PartialRow:
    partition: Partition
    items: int
    partial: dict[str, Any]
    attempts: int


def check_job_id(job_id: object) -> str:
    """``job_id`` as a canonical UUID string; ``InvalidArguments`` if it is not one."""
    try:
        return str(uuid.UUID(str(job_id)))
    except ValueError:
        raise InvalidArguments(f"not a job id: {job_id!r}") from None


def get_dataset(name: str) -> Dataset:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, item_count FROM datasets WHERE name = %s", (name,))
        row = cur.fetchone()
    if row is None:
        raise InvalidArguments(f"no dataset named {name!r}")
    return Dataset(*row)


@contextmanager
def partition_items(dataset_id: int, start: int, end: int) -> Iterator[Iterator[dict[str, Any]]]:
    """Items ``start <= item_index < end`` in index order, one batch in memory at a time.

    A context manager, so the cursor and its transaction end with the block even
    when processing stops half-way (an exception must not leave a transaction open).
    """
    with db.connection() as conn, conn.cursor(name="mapreduce_partition") as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(
            "SELECT data FROM dataset_items WHERE dataset_id = %s"
            " AND item_index >= %s AND item_index < %s ORDER BY item_index",
            (dataset_id, start, end),
        )
        yield (data for (data,) in cur)


def create_job(
    job_id: str,
    dataset: Dataset,
    function: str,
    options: Mapping[str, Any],
    partitions: int,
    cur: extensions.cursor | None = None,
) -> None:
    """The job row (``pending``, unpublished), in ``cur``'s transaction or its own."""
    if cur is None:
        with db.connection() as conn, conn.cursor() as own:
            create_job(job_id, dataset, function, options, partitions, own)
        return
    cur.execute(
        "INSERT INTO mapreduce_jobs (id, dataset_id, function, options, partitions_total,"
        " items_total, reduce_task_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            job_id,
            dataset.id,
            function,
            Json(dict(options)),
            partitions,
            dataset.item_count,
            str(uuid.uuid4()),
        ),
    )


_UNPUBLISHED = (
    "SELECT partitions_total, items_total, reduce_task_id FROM mapreduce_jobs"
    " WHERE id = %s AND published_at IS NULL AND status IN ('pending', 'running') FOR UPDATE"
)
#: ``skip_locked`` -> the statement of :func:`lock_unpublished`.
_LOCK_UNPUBLISHED = {False: _UNPUBLISHED, True: _UNPUBLISHED + " SKIP LOCKED"}


def lock_unpublished(
    cur: extensions.cursor, job_id: str, skip_locked: bool
) -> tuple[int, int, str] | None:
    """Lock an unfinished, unpublished job: ``(partitions_total, items_total, reduce task
    id)``; ``None`` if it is published, final, gone (or locked, with ``skip_locked``)."""
    cur.execute(_LOCK_UNPUBLISHED[skip_locked], (job_id,))
    row = cur.fetchone()
    return None if row is None else (int(row[0]), int(row[1]), str(row[2]))


def mark_published(cur: extensions.cursor, job_id: str, reduce_task_id: str) -> None:
    cur.execute(
        "UPDATE mapreduce_jobs SET published_at = clock_timestamp(), reduce_task_id = %s,"
        " updated_at = clock_timestamp() WHERE id = %s",
        (reduce_task_id, job_id),
    )


def withdraw_unpublished(cur: extensions.cursor, job_id: str) -> bool:
    """Delete the job unless its chord was published; ``False`` when it was."""
    cur.execute(
        "SELECT published_at IS NULL FROM mapreduce_jobs WHERE id = %s FOR UPDATE", (job_id,)
    )
    row = cur.fetchone()
    if row is None:
        return True
    if not row[0]:
        return False
    cur.execute("DELETE FROM mapreduce_jobs WHERE id = %s", (job_id,))
    return True


def get_job(job_id: str) -> Job:
    job_id = check_job_id(job_id)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id::text, dataset_id, function, options, status, partitions_total,"
            " partitions_done, items_total, items_processed, error"
            " FROM mapreduce_jobs WHERE id = %s",
            (job_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no map-reduce job {job_id!r}")
    return Job(*row)


def save_partial(job_id: str, partition: Partition, partial: Mapping[str, Any]) -> Job:
    """Store (or replace) the partial of ``partition``; return the job's new progress."""
    with db.connection() as conn, conn.cursor() as cur:
        # The job row lock orders concurrent map completions, so each recount
        # below sees every partial committed before it.
        cur.execute("SELECT 1 FROM mapreduce_jobs WHERE id = %s FOR UPDATE", (job_id,))
        cur.execute(
            "INSERT INTO mapreduce_partials"
            " (job_id, partition_index, start_index, end_index, items, partial)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (job_id, partition_index) DO UPDATE SET"
            " start_index = EXCLUDED.start_index, end_index = EXCLUDED.end_index,"
            " items = EXCLUDED.items, partial = EXCLUDED.partial,"
            " attempts = mapreduce_partials.attempts + 1, updated_at = clock_timestamp()",
            (
                job_id,
                partition.index,
                partition.start,
                partition.end,
                int(partial["items"]),
                Json(dict(partial)),
            ),
        )
        cur.execute(
            "UPDATE mapreduce_jobs j SET"
            " partitions_done = p.done, items_processed = p.items,"
            " status = CASE WHEN j.status = 'pending' THEN 'running' ELSE j.status END,"
            " started_at = coalesce(j.started_at, clock_timestamp()),"
            " updated_at = clock_timestamp()"
            " FROM (SELECT count(*) AS done, coalesce(sum(items), 0) AS items"
            "       FROM mapreduce_partials WHERE job_id = %s) p"
            " WHERE j.id = %s",
            (job_id, job_id),
        )
    return get_job(job_id)


@contextmanager
def job_partials(job_id: str) -> Iterator[Iterator[PartialRow]]:
    """The job's partials in partition order, :data:`FETCH_PARTIALS` per round trip."""
    with db.connection() as conn, conn.cursor(name="mapreduce_partials") as cur:
        cur.itersize = FETCH_PARTIALS
        cur.execute(
            "SELECT partition_index, start_index, end_index, items, partial, attempts"
            " FROM mapreduce_partials WHERE job_id = %s ORDER BY partition_index",
            (job_id,),
        )
        yield (
            PartialRow(Partition(index, start, end), items, partial, attempts)
            for index, start, end, items, partial, attempts in cur
        )


def finish_job(job_id: str, dataset_id: int, function: str, items: int, result: Any) -> None:
    """Store the result and mark the job succeeded, in one transaction (idempotent)."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO processing_results (job_id, dataset_id, function, items, result)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (job_id) DO UPDATE SET"
            " items = EXCLUDED.items, result = EXCLUDED.result, created_at = clock_timestamp()",
            (job_id, dataset_id, function, items, Json(result)),
        )
        cur.execute(
            "UPDATE mapreduce_jobs SET status = 'succeeded', error = NULL,"
            " finished_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = %s",
            (job_id,),
        )


def fail_job(job_id: str, error: str) -> bool:
    """Mark a pending or running job failed with ``error``; ``False`` if it was final."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE mapreduce_jobs SET status = 'failed', error = %s,"
            " finished_at = clock_timestamp(), updated_at = clock_timestamp()"
            " WHERE id = %s AND status IN ('pending', 'running')",
            (error[:2000], job_id),
        )
        return bool(cur.rowcount)


def job_status(job_id: str) -> dict[str, Any]:
    """The job row as JSON-friendly values, plus its result once it has one."""
    job_id = check_job_id(job_id)
    with db.connection() as conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(
            "SELECT j.id::text AS job_id, d.name AS dataset, j.function, j.options, j.status,"
            " j.partitions_done, j.partitions_total, j.items_processed, j.items_total, j.error,"
            " j.reduce_task_id, j.created_at, j.started_at, j.finished_at,"
            " extract(epoch FROM j.finished_at - j.created_at)::float8 AS seconds, r.result"
            " FROM mapreduce_jobs j JOIN datasets d ON d.id = j.dataset_id"
            " LEFT JOIN processing_results r ON r.job_id = j.id WHERE j.id = %s",
            (job_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no map-reduce job {job_id!r}")
    status = dict(row)
    for key in ("created_at", "started_at", "finished_at"):
        status[key] = status[key].isoformat() if status[key] is not None else None
    total = status["partitions_total"]
    status["percent"] = round(100.0 * status["partitions_done"] / total, 1) if total else 100.0
    return status
