"""F17: what the API or a step commits is published, or nothing was committed.

Real Redis and Postgres, real workers; the broker that goes away is the spare Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from fastapi.testclient import TestClient

from celeryref import queues
from celeryref.adapters import db
from celeryref.api.main import api
from celeryref.api.routes import tasks as task_routes
from celeryref.app.config import celery_config
from celeryref.mapreduce import jobs, planning, reference, store
from celeryref.mapreduce.functions import prepare
from celeryref.mapreduce.generate import generate
from celeryref.settings import settings
from celeryref.tasks.scheduled.outbox import sweep_outbox
from celeryref.workflows import engine, registry, status
from celeryref.workflows import store as wf_store
from celeryref.workflows.definition import Step, Workflow
from tests.conftest import wait_for
from tests.integration import wf_support
from tests.integration.conftest import on_spare, spare
from tests.integration.wf_support import WORK_QUEUES, finished

domain_tables = wf_support.domain_tables

AUTH = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
RECORDS = [{"id": 1, "name": "a", "value": 3}, {"id": 2, "name": "b", "value": 5}]


def counts() -> tuple[int, int, int]:
    """Rows of executions, jobs and client keys."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM workflow_executions),"
            " (SELECT count(*) FROM mapreduce_jobs), (SELECT count(*) FROM client_submissions)"
        )
        found = cur.fetchone()
    assert found is not None
    return int(found[0]), int(found[1]), int(found[2])


@pytest.fixture
def tables(domain_tables: None) -> Iterator[None]:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE mapreduce_jobs, client_submissions CASCADE")
    yield


def age(execution_id: str) -> None:
    """Make the execution's queued steps older than any grace."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE workflow_steps SET queued_at = queued_at - interval '1 hour'"
            " WHERE execution_id = %s",
            (execution_id,),
        )


def test_posts_while_the_broker_is_down_commit_nothing(
    spare_redis: tuple[str, redis.Redis], tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given the broker stopped, POST /workflows, /jobs and keyed /tasks answer 503; no
    execution, job or key row is left, and the sweep after the broker is back finds
    nothing to publish (before F17 the execution stayed ``running``, never published)."""
    name = f"f17-{uuid.uuid4().hex[:8]}"
    generate(name, 20, seed=3, replace=True)
    down = Celery("f17-test", set_as_current=False)
    down.conf.update(celery_config(settings))
    down.conf.broker_url = on_spare(settings.broker_url)
    for module in (engine, jobs):
        monkeypatch.setattr(module, "app", down)
    monkeypatch.setattr(task_routes, "celery", down)
    stop = spare("stop", "redis")
    assert stop.returncode == 0, stop.stderr
    try:
        with TestClient(api) as client:
            posts = [
                ("/workflows", {"workflow": "data_processing", "input": {"records": RECORDS}}),
                ("/jobs", {"dataset": name, "function": "aggregation", "partitions": 2}),
                ("/tasks", {"task": "add", "args": {"x": 1, "y": 2}, "idempotency_key": "k1"}),
            ]
            for path, body in posts:
                answer = client.post(path, json=body, headers=AUTH)
                assert answer.status_code == 503, (path, answer.text)
    finally:
        up = spare("up", "-d", "--wait", "redis")
        assert up.returncode == 0, up.stderr
    assert counts() == (0, 0, 0)
    assert sweep_outbox(older_than=0, stuck_after=0) == {
        "steps": 0,
        "jobs": 0,
        "reduced": 0,
        "keys_pruned": 0,
    }


def test_a_start_that_died_before_publishing_is_published_by_the_beat_sweep(
    worker: Any, tables: None
) -> None:
    """Given an execution committed (``validate`` queued) whose starter died before it
    published, when the sweep task runs on the scheduled queue, the execution runs to
    the end (before F17 it stayed ``running`` with ``validate`` queued, for good)."""
    workflow = registry.get("data_processing")
    execution_id = str(uuid.uuid4())
    steps = [(s, s.queue or registry.task_queue(s.task)) for s in workflow.steps]
    with db.connection() as conn, conn.cursor() as cur:  # what start() commits, and no more
        wf_store.insert_execution(cur, execution_id, workflow.name, {"records": RECORDS}, steps)
        wf_store.queue_ready_steps(cur, execution_id)
    age(execution_id)
    with worker(queues.SCHEDULED, *WORK_QUEUES, pool="threads", concurrency=4):
        swept = sweep_outbox.delay(older_than=60).get(timeout=30)
        state = finished(execution_id)
    assert swept["steps"] == 1
    assert state.status == "succeeded", status.render_tree(state)


def test_a_step_published_twice_runs_once(worker: Any, tables: None) -> None:
    """Given a step whose message is on the broker but whose ``mark_published`` was lost,
    the sweep publishes it again; with both messages taken at once by two threads, the
    step starts once (``attempts == 1``) and the execution succeeds (before F17 the
    second message re-entered the running step and ran it again)."""
    slow = Workflow("f17_slow", (Step("wait", "flow.wait", params={"seconds": 2.0}),))
    execution_id = engine.start(slow, {})
    with db.connection() as conn, conn.cursor() as cur:  # the lost mark
        cur.execute(
            "UPDATE workflow_steps SET published_at = NULL WHERE execution_id = %s",
            (execution_id,),
        )
    age(execution_id)
    assert sweep_outbox(older_than=60)["steps"] == 1
    with worker(*WORK_QUEUES, pool="threads", concurrency=2):
        state = finished(execution_id)
    assert state.status == "succeeded", status.render_tree(state)
    assert state.step("wait").attempts == 1


def test_a_job_whose_last_partial_was_stored_by_a_dying_process_finishes_by_the_sweep(
    worker: Any, tables: None
) -> None:
    """Given a job whose every partial is stored but whose chord never fired (the map
    that stored the last one died before reporting), the sweep sends the reducer and
    the job succeeds with the reference result (before F17: ``running`` until the
    map's redelivery, an hour later)."""
    name = f"f17-{uuid.uuid4().hex[:8]}"
    generate(name, 60, seed=5, replace=True)
    options = {"group_by": "region", "value": "amount"}
    job_id = jobs.start(name, "aggregation", options, partitions=3)
    broker = redis.Redis.from_url(settings.broker_url)
    broker.delete(*queues.redis_keys(queues.CPU_INTENSIVE))  # the maps' messages, lost
    job = store.get_job(job_id)
    function = prepare(job.function, job.options)
    for partition in planning.plan(job.items_total, partitions=job.partitions_total):
        with store.partition_items(job.dataset_id, partition.start, partition.end) as items:
            store.save_partial(job_id, partition, function.map(items))  # what each map did
    assert store.get_job(job_id).status == store.RUNNING
    assert sweep_outbox(older_than=60, stuck_after=0)["reduced"] == 1
    with worker(queues.CPU_INTENSIVE):
        done = wait_for(lambda: jobs.is_final(s := jobs.status(job_id)) and s, 60, "the job")
    assert done["status"] == store.SUCCEEDED, done
    assert done["result"] == reference.run(name, "aggregation", options)


def test_only_one_sweep_runs_at_a_time(clean_state: None) -> None:
    """While one sweep holds the lease, another returns at once without sweeping."""
    from celeryref.reliability import outbox

    with outbox.lease("outbox-sweep", 30) as taken:
        assert taken
        assert sweep_outbox(older_than=60) == {"skipped": True}
    assert "skipped" not in sweep_outbox(older_than=60)
