"""The naive map-reduce the benchmark measures against. A counter-example: do not copy.

It repeats the source sketch's shape (SPEC F8, "defects to avoid") with correct
ranges, so that it computes the same result and only its cost differs:
``naive_map`` loads its whole partition with one ``fetchall`` and returns every
processed item (normalized when the function normalizes); the chord carries all
of them through the result backend into ``naive_reduce``'s arguments, which runs
the function over them.
Memory and result-backend traffic grow with the dataset instead of with the
number of partitions. ``python -m bench.mapreduce.run`` is its only user;
the real implementation is :mod:`celeryref.tasks.cpu_intensive.mapreduce`.
"""

from __future__ import annotations

from typing import Any

from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.mapreduce import records
from celeryref.mapreduce.functions import prepare


@app.task
def naive_map(dataset_id: int, start: int, end: int, normalize: bool) -> list[dict[str, Any]]:
    """Every item of ``[start, end)`` (normalized if asked) as the task's result."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT data FROM dataset_items WHERE dataset_id = %s"
            " AND item_index >= %s AND item_index < %s ORDER BY item_index",
            (dataset_id, start, end),
        )
        rows = cur.fetchall()
    return [records.normalize(data)[0] if normalize else data for (data,) in rows]


@app.task
def naive_reduce(
    item_lists: list[list[dict[str, Any]]], function: str, options: dict[str, Any]
) -> dict[str, Any]:
    """Chord body: ``function`` over all the items the maps shipped."""
    return prepare(function, options).run(item for items in item_lists for item in items)
