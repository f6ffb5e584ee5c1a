"""The DAG engine over a real broker and Postgres: order, parallelism, exactly-once
enqueue, failure, cancel, cycles, the built-in workflows and the CLI."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.result import AsyncResult

from celeryref import queues
from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.settings import settings
from celeryref.workflows import engine, status
from celeryref.workflows.__main__ import main as cli
from celeryref.workflows.definition import Step, Workflow, WorkflowDefinitionError
from celeryref.workflows.engine import StepContext
from tests.conftest import wait_for
from tests.integration import wf_support
from tests.integration.wf_support import WORK_QUEUES, Sink, finished, mails_to, step_is

# Fixtures, made visible to this module's tests by name.
domain_tables = wf_support.domain_tables
smtp_sink = wf_support.smtp_sink
start_sink = wf_support.start_sink

RECORDS = [
    {"id": 1, "name": " alpha ", "value": 10, "category": "A"},
    {"id": 2, "name": "beta", "value": 30, "category": "b"},
    {"id": 3, "name": "gamma", "value": 20},
    {"id": 4, "name": "", "value": 5},
]


def diamond(seconds: float) -> Workflow:
    return Workflow(
        "diamond",
        (
            Step("start", "records.validate"),
            Step("left", "flow.wait", depends_on=("start",), params={"seconds": seconds}),
            Step("right", "flow.wait", depends_on=("start",), params={"seconds": seconds}),
            Step("join", "records.analyze", depends_on=("left", "right")),
        ),
    )


def test_data_processing_runs_in_order_and_mails_the_summary(
    worker: Any, domain_tables: None, smtp_sink: Sink
) -> None:
    """validate -> clean -> transform -> analyze -> report -> notify: each step starts
    after its dependency finished, the report file exists, the e-mail arrives."""
    payload = {"records": RECORDS, "title": "Q3 data", "notify": ["analyst@example.com"]}
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        eid = engine.start("data_processing", payload)
        state = finished(eid)
        [mail] = wait_for(mails_to(smtp_sink, "analyst@example.com"), 20, "the summary mail")

    assert state.status == "succeeded", status.render_tree(state)
    steps = state.steps
    for before, after in itertools.pairwise(steps):
        assert before.finished_at and after.started_at and before.finished_at <= after.started_at
    assert state.step("validate").result["invalid"] == 1
    assert state.step("analyze").result["analysis"]["count"] == 3
    report = Path(state.step("report").result["path"])
    assert report.read_text().startswith("# Q3 data\n")
    assert state.result == {"notify": state.step("notify").result}
    assert mail["subject"] == "Q3 data" and '"sha256"' in mail["body"]
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, recipients FROM email_logs")
        assert cur.fetchall() == [("sent", ["analyst@example.com"])]


def test_independent_steps_run_in_parallel(worker: Any, domain_tables: None) -> None:
    """In a diamond, the two middle steps' recorded [start, end] intervals overlap and
    the join starts only after both ended."""
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        state = finished(engine.start(diamond(1.0), {"records": RECORDS}))

    assert state.status == "succeeded", status.render_tree(state)
    left, right, join = state.step("left"), state.step("right"), state.step("join")
    assert left.started_at and left.finished_at and right.started_at and right.finished_at
    assert left.started_at < right.finished_at and right.started_at < left.finished_at
    assert join.started_at and join.started_at >= max(left.finished_at, right.finished_at)
    assert join.attempts == 1


def queued_messages(task_id: str) -> int:
    broker = redis.Redis.from_url(settings.broker_url)
    keys = queues.redis_keys(queues.DEFAULT)
    bodies = [m for k in keys for m in broker.lrange(k, 0, -1)]
    return sum(json.loads(b)["headers"]["id"] == task_id for b in bodies)


def run_by_hand(ctx: StepContext, task_id: str) -> None:
    begin = engine.begin_step(ctx, task_id)
    assert begin.action == "run"
    engine.complete_step(ctx, task_id, {"records": []})


@pytest.mark.parametrize("attempt", range(5))
def test_a_join_is_enqueued_once_when_its_dependencies_finish_together(
    domain_tables: None, attempt: int
) -> None:
    """Two threads complete both dependencies of the join at the same instant: the join
    is queued and published exactly once (no worker: the steps are run by hand)."""
    eid = engine.start(diamond(0), {"records": RECORDS})
    state = status.load(eid)
    start = state.step("start")
    assert start.task_id is not None
    run_by_hand(StepContext(eid, "start", 0, 0), start.task_id)
    state = status.load(eid)
    contexts = {}
    for name in ("left", "right"):
        task_id = state.step(name).task_id
        assert task_id is not None
        ctx = StepContext(eid, name, 0, 0)
        assert engine.begin_step(ctx, task_id).action == "run"
        contexts[name] = (ctx, task_id)
    barrier = threading.Barrier(2)

    def complete(name: str) -> None:
        ctx, task_id = contexts[name]
        barrier.wait()
        engine.complete_step(ctx, task_id, {"records": [{"id": name}]})

    threads = [threading.Thread(target=complete, args=(n,)) for n in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    join = status.load(eid).step("join")
    assert join.status == "queued" and join.task_id is not None
    assert queued_messages(join.task_id) == 1


def test_a_cycle_is_rejected_before_anything_runs(domain_tables: None) -> None:
    """Starting a cyclic definition fails with the cycle named; no execution is stored."""
    cyclic = Workflow(
        "cyclic",
        (
            Step("a", "records.validate", depends_on=("b",)),
            Step("b", "records.clean", depends_on=("a",)),
        ),
    )
    with pytest.raises(WorkflowDefinitionError, match="cycle: a -> b -> a"):
        engine.start(cyclic, {})
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM workflow_executions")
        assert cur.fetchone() == (0,)


def test_a_failing_step_fails_the_execution_and_skips_its_dependents(
    worker: Any, domain_tables: None
) -> None:
    """Strict validation fails on an invalid record: the execution fails naming the
    step, every later step is 'skipped' and never started."""
    strict = Workflow(
        "strict",
        (
            Step("validate", "records.validate", params={"strict": True}),
            Step("clean", "records.clean", depends_on=("validate",)),
            Step("analyze", "records.analyze", depends_on=("clean",)),
        ),
    )
    with worker(*WORK_QUEUES, pool="threads", concurrency=2):
        state = finished(engine.start(strict, {"records": RECORDS}))

    assert state.status == "failed"
    assert state.error and "step 'validate' failed: InvalidArguments: 1 invalid" in state.error
    assert state.step("validate").status == "failed"
    for name in ("clean", "analyze"):
        step = state.step(name)
        assert (step.status, step.started_at) == ("skipped", None)
        assert step.error == "skipped: step 'validate' failed"


def test_cancel_stops_pending_steps(worker: Any, domain_tables: None) -> None:
    """Cancelled while the middle step runs: the execution is 'cancelled', the step after
    it never starts, and the middle step's late result is discarded."""
    slow = Workflow(
        "slow",
        (
            Step("first", "records.validate"),
            Step("middle", "flow.wait", depends_on=("first",), params={"seconds": 2}),
            Step("last", "records.analyze", depends_on=("middle",)),
        ),
    )
    with worker(*WORK_QUEUES, pool="threads", concurrency=2):
        eid = engine.start(slow, {"records": RECORDS})
        wait_for(step_is(eid, "middle", "running"), 20, "the middle step to run")
        assert engine.cancel(eid) is True
        middle_id = status.load(eid).step("middle").task_id
        assert middle_id is not None
        wait_for(lambda: AsyncResult(middle_id, app=app).ready(), 20, "the middle step to end")

    state = status.load(eid)
    assert state.status == "cancelled" and state.finished_at is not None
    assert [s.status for s in state.steps] == ["succeeded", "cancelled", "cancelled"]
    assert state.step("middle").result is None
    assert state.step("last").started_at is None and state.step("last").task_id is None
    assert engine.cancel(eid) is False


def test_conditional_processing_dispatches_the_follow_ups_that_apply(
    worker: Any, domain_tables: None, smtp_sink: Sink
) -> None:
    """25 % invalid records (> 10 %) dispatch a quality alert and a report; the high-value
    alert (threshold not reached) is not dispatched; the alert e-mail arrives."""
    payload = {
        "records": RECORDS,
        "title": "Batch 7",
        "notify": ["data@example.com"],
        "thresholds": {"high_value": 1000},
    }
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        state = finished(engine.start("conditional_processing", payload))
        dispatched = state.step("dispatch").result["dispatched"]
        report = AsyncResult(dispatched[0]["task_id"], app=app).get(timeout=30)
        mails = wait_for(mails_to(smtp_sink, "data@example.com", 2), 20, "two mails")

    assert state.status == "succeeded", status.render_tree(state)
    assert [d["follow_up"] for d in dispatched] == ["report", "quality_alert"]
    assert Path(report["path"]).read_text().startswith("# Batch 7: report\n")
    assert {m["subject"] for m in mails} == {"Batch 7: quality alert", "Batch 7"}


def cli_output(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(argv)
    return code, out.getvalue()


def test_cli_starts_shows_and_cancels(worker: Any, domain_tables: None) -> None:
    """`start` prints an id, `status` prints the step tree, `cancel` of a finished
    execution exits 1, an unknown workflow exits 2."""
    args = ["start", "data_processing", "--input", json.dumps({"records": RECORDS})]
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        code, printed = cli_output(args)
        assert code == 0
        execution_id = printed.strip()
        finished(execution_id)

    code, tree = cli_output(["status", execution_id])
    assert code == 0
    assert f"data_processing {execution_id}: succeeded" in tree
    assert "└─ clean [succeeded] records.clean@default <- validate" in tree
    assert json.loads(cli_output(["status", execution_id, "--json"])[1])["status"] == "succeeded"
    assert cli_output(["cancel", execution_id]) == (1, f"{execution_id} had already finished\n")
    assert cli(["start", "nope"]) == 2


def test_a_redelivered_running_step_runs_again_with_its_attempts_counted(
    domain_tables: None,
) -> None:
    """A message redelivered after its worker died (same task id, step still 'running')
    is allowed to run again; a stranger's task id is not."""
    eid = engine.start(diamond(0), {"records": RECORDS})
    task_id = status.load(eid).step("start").task_id
    assert task_id is not None
    ctx = StepContext(eid, "start", 0, 0)
    assert engine.begin_step(ctx, task_id).action == "run"
    assert engine.begin_step(ctx, task_id).action == "run"
    assert engine.begin_step(ctx, "someone-else").action == "stop"
    assert status.load(eid).step("start").attempts == 2


def test_a_step_redelivered_after_success_publishes_what_a_crash_left_unsent(
    domain_tables: None,
) -> None:
    """The worker died between committing a step's result and publishing the next steps:
    the redelivered message returns the stored result and publishes them, once."""
    eid = engine.start(diamond(0), {"records": RECORDS})
    task_id = status.load(eid).step("start").task_id
    assert task_id is not None
    ctx = StepContext(eid, "start", 0, 0)
    run_by_hand(ctx, task_id)
    broker = redis.Redis.from_url(settings.broker_url)
    broker.delete(*queues.redis_keys(queues.DEFAULT))  # the lost publish
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("UPDATE workflow_steps SET published_at = NULL WHERE status = 'queued'")

    again = engine.begin_step(ctx, task_id)

    assert (again.action, again.result) == ("done", {"records": []})
    state = status.load(eid)
    ids = [state.step(name).task_id or "" for name in ("left", "right")]
    assert [queued_messages(t) for t in ids] == [1, 1]
    assert engine.begin_step(ctx, task_id).action == "done"
    assert [queued_messages(t) for t in ids] == [1, 1], "published once, not again"
