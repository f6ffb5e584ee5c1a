"""Map-reduce over a Postgres dataset with real workers: exact, boundary-safe,
idempotent under retries and crashes, observable while it runs (SPEC F8)."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from celery import chord
from celery.result import AsyncResult

from bench.tasks.cpu_intensive import naive_mapreduce as mapreduce_naive
from celeryref import queues
from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.errors import InvalidArguments
from celeryref.mapreduce import generate, jobs, planning, records, reference, store
from celeryref.mapreduce.__main__ import main as mapreduce_cli
from celeryref.reliability import delivery_guard
from celeryref.tasks.cpu_intensive import mapreduce as tasks
from tests.conftest import wait_for

#: Items of the main test dataset: 7 partitions do not divide it (3001 = 7 * 428 + 5).
ITEMS = 3_001
DATASET = "it-sales"

#: Options of each function, as a job would be started with them.
FUNCTION_OPTIONS: dict[str, dict[str, Any]] = {
    "validation": {"rules": {"amount_positive": "amount > 0", "has_at": "'@' in email"}},
    "transformation": {
        "calculated": {"total": "amount * quantity", "net": "round(amount / 1.2, 2)"}
    },
    "analysis": {},
    "aggregation": {"group_by": "category", "value": "amount * quantity"},
}


@pytest.fixture
def mapreduce_tables(clean_state: None) -> Iterator[None]:
    """Empty map-reduce tables (``clean_state`` does not know them)."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "TRUNCATE datasets, dataset_items, mapreduce_jobs, mapreduce_partials,"
            " processing_results RESTART IDENTITY CASCADE"
        )
    yield


@pytest.fixture
def dataset(mapreduce_tables: None) -> str:
    """A generated dataset of :data:`ITEMS` messy items."""
    generate.generate(DATASET, ITEMS, seed=7)
    return DATASET


def wait_final(job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The job's status once it succeeded or failed."""

    def final() -> dict[str, Any] | None:
        status = jobs.status(job_id)
        return status if jobs.is_final(status) else None

    return wait_for(final, timeout, f"job {job_id} to finish", every=0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def partial_rows(job_id: str) -> list[tuple[int, int, int, int, int]]:
    """``(partition, start, end, items, attempts)`` of every stored partial."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT partition_index, start_index, end_index, items, attempts"
            " FROM mapreduce_partials WHERE job_id = %s ORDER BY partition_index",
            (job_id,),
        )
        return [tuple(row) for row in cur.fetchall()]


def stored_result(job_id: str) -> tuple[int, Any] | None:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT items, result FROM processing_results WHERE job_id = %s", (job_id,))
        row = cur.fetchone()
    return None if row is None else (row[0], row[1])


@pytest.mark.parametrize("function", sorted(FUNCTION_OPTIONS))
def test_each_function_distributed_equals_the_single_process_reference(
    worker: Any, dataset: str, function: str
) -> None:
    """Given 3001 items in 7 partitions, the job's result equals one pass over all
    items exactly, is stored in processing_results, and the job's counters add up."""
    options = FUNCTION_OPTIONS[function]
    with worker(queues.CPU_INTENSIVE):
        job_id = jobs.start(dataset, function, options, partitions=7)
        status = wait_final(job_id)

    assert status["status"] == "succeeded", status["error"]
    assert status["result"] == reference.run(dataset, function, options)
    assert stored_result(job_id) == (ITEMS, status["result"])
    assert (status["partitions_done"], status["partitions_total"]) == (7, 7)
    assert status["items_processed"] == ITEMS
    rows = partial_rows(job_id)
    assert [r[0] for r in rows] == list(range(7))
    assert sum(r[3] for r in rows) == ITEMS
    assert {r[4] for r in rows} == {1}, "every partial written once"


def test_aggregation_matches_an_independent_computation(worker: Any, dataset: str) -> None:
    """Counts and sums per group equal a plain Python computation over the generated
    items (math.fsum of the same values): exact, not just close."""
    with worker(queues.CPU_INTENSIVE):
        job_id = jobs.start(dataset, "aggregation", {"group_by": "region"}, partitions=5)
        result = wait_final(job_id)["result"]

    values: dict[str, list[float]] = {}
    members: dict[str, int] = {}
    for raw in generate.make_items(ITEMS, seed=7):
        item = records.normalize(raw)[0]
        region = item.get("region")
        if region:
            members[region] = members.get(region, 0) + 1
            amount = item.get("amount")
            if isinstance(amount, int | float) and not isinstance(amount, bool):
                values.setdefault(region, []).append(amount)
    assert sorted(result["groups"]) == sorted(members)
    for region, row in result["groups"].items():
        assert row["count"] == members[region]
        assert row["values"] == len(values[region])
        assert row["sum"] == math.fsum(values[region])
        assert row["min"] == min(values[region]) and row["max"] == max(values[region])


@pytest.mark.parametrize(("items", "partitions"), [(3001, 7), (1000, 3), (5, 8), (1, 1), (0, 4)])
def test_boundary_items_are_processed_exactly_once(
    worker: Any, mapreduce_tables: None, items: int, partitions: int
) -> None:
    """Summing the item ids 0..n-1 over uneven partitions gives n(n-1)/2 and count n:
    no boundary item is skipped or processed twice (half-open ranges, not BETWEEN)."""
    generate.generate("ids", items, seed=1)
    with worker(queues.CPU_INTENSIVE):
        job_id = jobs.start(
            "ids", "aggregation", {"group_by": None, "value": "id"}, partitions=partitions
        )
        status = wait_final(job_id)

    assert status["status"] == "succeeded", status["error"]
    groups = status["result"]["groups"]
    if items == 0:
        assert groups == {} and status["partitions_total"] == 0
        return
    assert groups["all"]["count"] == items
    assert groups["all"]["sum"] == items * (items - 1) // 2
    assert (groups["all"]["min"], groups["all"]["max"]) == (0, items - 1)
    ranges = [(start, end) for _, start, end, _, _ in partial_rows(job_id)]
    assert ranges[0][0] == 0 and ranges[-1][1] == items
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert len(ranges) == min(items, partitions)


def test_a_repeated_map_replaces_its_partial_and_the_result_is_unchanged(
    worker: Any, dataset: str
) -> None:
    """Running a partition's map again (as a retry would) replaces its partial:
    one row, attempts=2, same counters; reducing again gives the same result."""
    with worker(queues.CPU_INTENSIVE):
        job_id = jobs.start(dataset, "transformation", {}, partitions=4)
        first = wait_final(job_id)
        partition = planning.plan(ITEMS, partitions=4)[2]
        ref = tasks.map_partition.delay(job_id, 2, partition.start, partition.end).get(timeout=30)
        again = jobs.status(job_id)
        refs = [{"job_id": job_id, "partition": i, "items": 0} for i in range(4)]
        tasks.reduce_job.delay(refs, job_id).get(timeout=30)
    second = jobs.status(job_id)

    assert ref == {"job_id": job_id, "partition": 2, "items": partition.size}
    rows = partial_rows(job_id)
    assert len(rows) == 4 and [r[4] for r in rows] == [1, 1, 2, 1]
    assert (again["partitions_done"], again["items_processed"]) == (4, ITEMS)
    assert second["result"] == first["result"]


def test_a_range_outside_the_plan_is_refused(worker: Any, dataset: str) -> None:
    """A map call whose range overlaps two planned partitions fails instead of
    double counting (and, failing for good, fails its job)."""
    with worker(queues.CPU_INTENSIVE):
        job_id = jobs.start(dataset, "validation", {}, partitions=3)
        wait_final(job_id)
        with pytest.raises(InvalidArguments, match="not in its plan"):
            tasks.map_partition.delay(job_id, 1, 900, 2100).get(timeout=30)
    assert [r[3] for r in partial_rows(job_id)] == [1001, 1000, 1000]


def test_progress_is_readable_while_the_job_runs(worker: Any, dataset: str) -> None:
    """While 60 partitions run, the job's status shows partitions_done between 0 and
    60, never decreasing; the final status shows 60/60."""
    seen: list[int] = []
    with worker(queues.CPU_INTENSIVE):
        job_id = jobs.start(dataset, "analysis", {}, partitions=60)

        def final() -> dict[str, Any] | None:
            status = jobs.status(job_id)
            seen.append(status["partitions_done"])
            return status if jobs.is_final(status) else None

        status = wait_for(final, 60, "the job to finish", every=0.005)
    assert status["status"] == "succeeded"
    assert any(0 < done < 60 for done in seen), seen
    assert seen == sorted(seen)
    assert (status["partitions_done"], status["percent"]) == (60, 100.0)


def test_a_failing_map_fails_the_job_and_the_reducer_never_runs(worker: Any, dataset: str) -> None:
    """Grouping by e-mail exceeds max_groups in every map: the job turns failed with
    the reason, nothing is stored as its result, and the chord body fails too."""
    with worker(queues.CPU_INTENSIVE):
        job_id = jobs.start(
            dataset, "aggregation", {"group_by": "email", "max_groups": 10}, partitions=3
        )
        status = wait_final(job_id)
        body = AsyncResult(status["reduce_task_id"], app=app)
        wait_for(lambda: body.state == "FAILURE", 30, "the chord body to fail")

    assert status["status"] == "failed"
    assert "distinct values" in status["error"]
    assert stored_result(job_id) is None


def test_the_errback_records_a_failing_reducer(worker: Any, dataset: str) -> None:
    """A reducer that finds a partial missing fails; its link_error errback marks the job."""
    job_id = "7a1c0c8e-0000-4000-8000-000000000001"
    store.create_job(job_id, store.get_dataset(dataset), "validation", {}, 2)
    with worker(queues.CPU_INTENSIVE):
        tasks.reduce_job.apply_async(
            ([{"partition": 0}, {"partition": 1}], job_id),
            link_error=tasks.record_job_failure.s(job_id=job_id),
        )
        status = wait_final(job_id, timeout=30)
    assert status["status"] == "failed"
    assert "partition 0 has no partial" in status["error"]


def test_a_map_killed_mid_partition_is_redelivered_and_counted_once(
    worker_process: Any, mapreduce_tables: None
) -> None:
    """SIGKILL of the pool process running a map: acks_late + reject_on_worker_lost
    requeue it, it runs again, and the job's counts are exact (one partial each)."""
    items = 150_000
    generate.generate("big", items, seed=3)
    node = worker_process(queues.CPU_INTENSIVE, name="mr-kill", concurrency=1)
    job_id = jobs.start("big", "analysis", {}, partitions=2)

    def running_map() -> dict[str, Any] | None:
        active = app.control.inspect(destination=[node], timeout=1).active() or {}
        maps = [t for t in active.get(node, []) if t["name"] == tasks.map_partition.name]
        return maps[0] if maps else None

    victim = wait_for(running_map, 60, "a map task to run")
    # Well inside the partition: 75k items take seconds of CPU.
    wait_for(lambda: cpu_seconds(victim["worker_pid"]) > 0.3, 30, "the map to burn CPU")
    os.kill(victim["worker_pid"], signal.SIGKILL)

    status = wait_final(job_id, timeout=180)
    assert status["status"] == "succeeded", status["error"]
    deliveries = delivery_guard.client().get(delivery_guard.delivery_key(victim["id"], 0))
    assert int(deliveries) == 2, "the killed map was delivered again"
    assert status["items_processed"] == items
    rows = partial_rows(job_id)
    assert [r[3] for r in rows] == [items // 2, items // 2]
    assert [r[4] for r in rows] == [1, 1], "the killed run stored nothing; the rerun once"
    assert status["result"] == reference.run("big", "analysis", {})
    assert status["result"]["items"] == items


def test_the_naive_baseline_computes_the_same_result(worker: Any, dataset: str) -> None:
    """The benchmark's naive variant does the same work (so only its cost differs).

    It lives in bench.tasks, which this process does not route (EXTRA_TASK_PACKAGES
    is unset), so the queue is named explicitly.
    """
    options = FUNCTION_OPTIONS["aggregation"]
    found = store.get_dataset(dataset)
    cpu = {"queue": queues.CPU_INTENSIVE}
    header = [
        mapreduce_naive.naive_map.si(found.id, p.start, p.end, True).set(**cpu)
        for p in planning.plan(ITEMS, partitions=3)
    ]
    with worker(queues.CPU_INTENSIVE):
        body = mapreduce_naive.naive_reduce.s("aggregation", options).set(**cpu)
        result = chord(header)(body)
        value = result.get(timeout=60)
    assert value == reference.run(dataset, "aggregation", options)


def test_the_cli_starts_a_job_and_reports_its_status(worker: Any, mapreduce_tables: None) -> None:
    """generate -> start --wait -> status, as an operator would type them."""
    assert generate.main(["--name", "cli", "--items", "500", "--seed", "2"]) == 0
    assert generate.main(["--name", "cli", "--items", "500"]) == 2, "exists: refused"
    out = io.StringIO()
    with worker(queues.CPU_INTENSIVE):
        code = mapreduce_cli(
            [
                "start",
                "--dataset",
                "cli",
                "--function",
                "aggregation",
                "--options",
                '{"group_by": "region", "metrics": ["count", "sum"]}',
                "--partitions",
                "3",
                "--wait",
                "--timeout",
                "60",
            ],
            out=out,
        )
    assert code == 0, out.getvalue()
    job_id = out.getvalue().splitlines()[0]
    status_out = io.StringIO()
    assert mapreduce_cli(["status", job_id], out=status_out) == 0
    status = json.loads(status_out.getvalue())
    assert status["status"] == "succeeded"
    assert (
        sum(g["count"] for g in status["result"]["groups"].values())
        + status["result"]["skipped"]["missing_group"]
        == 500
    )
    assert mapreduce_cli(["start", "--dataset", "cli", "--function", "eval"]) == 2
    assert mapreduce_cli(["status", "not-a-job"]) == 2
