"""Named datasets in Postgres (``dataset_records``) and stored processing results.

Reads page by key (``id > last ORDER BY id LIMIT n``): every record is read once,
however large the dataset, and a page is never held open across a task's run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from psycopg2.extras import Json, execute_values

from celeryref.adapters import db
from celeryref.errors import InvalidArguments

#: Most records a task takes inline (in its message or a workflow's input).
MAX_INLINE_RECORDS = 10_000
#: Most characters of a dataset name.
MAX_NAME_LENGTH = 100


def check_name(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
        raise InvalidArguments(f"dataset must be a name of 1..{MAX_NAME_LENGTH} characters")
    return name


def add_records(dataset: str, records: Sequence[Mapping[str, Any]]) -> int:
    """Append ``records`` to ``dataset``; return how many."""
    with db.connection() as conn, conn.cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO dataset_records (dataset, data) VALUES %s",
            [(check_name(dataset), Json(dict(r))) for r in records],
        )
    return len(records)


def count(dataset: str) -> int:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM dataset_records WHERE dataset = %s", (dataset,))
        return int(db.fetch_one(cur)[0])


def pages(dataset: str, size: int) -> Iterator[list[Any]]:
    """The dataset's records, ``size`` at a time, in insertion order."""
    last = 0
    while True:
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id, data FROM dataset_records WHERE dataset = %s AND id > %s"
                " ORDER BY id LIMIT %s",
                (dataset, last, size),
            )
            rows = cur.fetchall()
        if not rows:
            return
        last = rows[-1][0]
        yield [data for _, data in rows]


def load(dataset: str, limit: int = MAX_INLINE_RECORDS) -> list[Any]:
    """At most ``limit`` records of ``dataset``; more is an error, not a silent cut."""
    found: list[Any] = []
    for page in pages(check_name(dataset), 1_000):
        found += page
        if len(found) > limit:
            raise InvalidArguments(f"dataset {dataset!r} has more than {limit} records")
    return found


def input_records(data: Mapping[str, Any]) -> list[Any]:
    """Records named by a task's or workflow's input: ``records`` inline or a ``dataset``."""
    if "records" in data:
        inline = data["records"]
        if not isinstance(inline, list) or len(inline) > MAX_INLINE_RECORDS:
            raise InvalidArguments(f"records must be a list of at most {MAX_INLINE_RECORDS}")
        return inline
    if "dataset" in data:
        return load(data["dataset"])
    raise InvalidArguments("the input needs 'records' (a list) or 'dataset' (a name)")


def store_result(dataset: str, task_id: str, options: Any, result: Any) -> int:
    """Store (or, for a re-run of ``task_id``, replace) a processing result; its id."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO dataset_results (dataset, task_id, options, result)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (task_id) DO UPDATE"
            " SET options = EXCLUDED.options, result = EXCLUDED.result, created_at = now()"
            " RETURNING id",
            (dataset, task_id, Json(options), Json(result)),
        )
        return int(db.fetch_one(cur)[0])
