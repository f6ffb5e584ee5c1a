"""The engine: start an execution, advance it as steps finish, cancel it.

No task ever waits for another. A step task, when it finishes, records its result
and queues the steps that have become ready, in ONE transaction that first locks
the execution's row (``SELECT ... FOR UPDATE``): when two dependencies of a step
finish at the same moment, the second transaction waits for the first, then sees
both results, and the step's conditional ``pending -> queued`` UPDATE matches in
exactly one of them. Messages are published after the commit, under row locks on
the queued steps (``FOR UPDATE SKIP LOCKED``), and marked published; a step task
redelivered after it already succeeded publishes whatever its first run could not,
and the sweeper (:mod:`celeryref.workflows.recovery`, F17) publishes what is still
unpublished after ``OUTBOX_GRACE_SECONDS``, whoever crashed.

Publishing is therefore at-least-once (a publish whose ``mark_published`` was lost is
sent again). Each publish carries a fresh dispatch id; the step records the dispatch
that started it, so a second message of a step already running is dropped, and one
arriving after it succeeded returns the stored result: the step runs once.

Start (F17): the execution's rows, and the client's idempotency key (F18), commit
first, then the first steps are published. A publish that fails withdraws the
execution again (deleted, under its row lock, unless the sweeper published it
meanwhile), so the API's 503 "nothing was accepted" is true; if even the withdrawal
fails, the sweeper publishes the execution once the broker is back.

Failure: a step that fails for good fails the execution; every step that has not
started is marked ``skipped`` and never runs (steps already running finish and
keep their results). Cancel: every step that has not finished is marked
``cancelled``; queued messages are revoked, running steps revoked with
``terminate`` (a thread pool cannot terminate: their results are discarded).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.errors import NotFound
from celeryref.submission import client_keys
from celeryref.workflows import registry, step_rows, store
from celeryref.workflows.definition import HARD_LIMIT_GRACE, Workflow, validate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepContext:
    """Which step of which execution a step task runs (kwarg ``workflow`` of its message)."""

    execution_id: str
    step: str
    retries: int
    retry_delay: float
    #: Id of this publish of the step (``None`` in messages older than F17).
    dispatch: str | None = None

    @classmethod
    def from_message(cls, raw: object) -> StepContext | None:
        if not isinstance(raw, dict):
            return None
        dispatch = raw.get("dispatch")
        return cls(
            str(raw["execution_id"]),
            str(raw["step"]),
            int(raw["retries"]),
            float(raw["retry_delay"]),
            None if dispatch is None else str(dispatch),
        )

    def to_message(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "step": self.step,
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "dispatch": self.dispatch,
        }


@dataclass(frozen=True)
class Begin:
    """What a step task does: ``run`` with ``data``/``upstream``, return ``result``
    of its earlier run (``done``), or nothing (``stop``: cancelled, skipped, failed)."""

    action: str
    data: Any = None
    upstream: dict[str, Any] | None = None
    result: Any = None


def start(workflow: Workflow | str, payload: Any, *, client_key: str | None = None) -> str:
    """Create an execution of ``workflow`` with input ``payload``; queue its first steps.

    With ``client_key``: at most one execution per key; a repeat returns the first id."""
    if isinstance(workflow, str):
        workflow = registry.get(workflow)
    validate(workflow, registry.STEP_TASKS)
    execution_id = str(uuid.uuid4())
    steps = [(s, s.queue or registry.task_queue(s.task)) for s in workflow.steps]
    with db.connection() as conn, conn.cursor() as cur:
        if client_key is not None:
            printed = client_keys.fingerprint("workflow", [dataclasses.asdict(workflow), payload])
            first = client_keys.claim(cur, client_key, "workflow", execution_id, printed)
            if first is not None:
                return first
        store.insert_execution(cur, execution_id, workflow.name, payload, steps)
        store.queue_ready_steps(cur, execution_id)
    try:
        publish(execution_id)
    except Exception:
        with db.connection() as conn, conn.cursor() as cur:
            withdrawn = store.withdraw_unpublished(cur, execution_id)
            if withdrawn:
                client_keys.forget(cur, client_key, execution_id)
        if withdrawn:
            raise
        logger.info("execution %s: publish failed, but the sweeper published it", execution_id)
    logger.info("workflow %s started as %s", workflow.name, execution_id)
    return execution_id


def publish(execution_id: str, *, sweeping: bool = False) -> int:
    """Send the messages of queued, unpublished steps; return how many were sent.

    ``sweeping``: only if the execution is running and nobody holds its row lock (a
    start withdrawing it, a step advancing it); the lock is kept until marked."""
    with db.connection() as conn, conn.cursor() as cur:
        if sweeping and not store.try_lock_running(cur, execution_id):
            return 0
        messages = step_rows.lock_unpublished(cur, execution_id)
        for m in messages:
            dispatch = uuid.uuid4().hex
            context = StepContext(execution_id, m.name, m.max_retries, m.retry_delay, dispatch)
            limits = {}
            if m.timeout is not None:
                limits = {"soft_time_limit": m.timeout, "time_limit": m.timeout + HARD_LIMIT_GRACE}
            app.send_task(
                registry.task_name(m.task),
                kwargs={"params": m.params, "workflow": context.to_message()},
                task_id=m.task_id,
                queue=m.queue,
                **limits,
            )
        step_rows.mark_published(cur, execution_id, [m.name for m in messages])
    return len(messages)


def begin_step(ctx: StepContext, task_id: str) -> Begin:
    """Mark the step running (first attempt, retry or redelivery) and load its inputs."""
    with db.connection() as conn, conn.cursor() as cur:
        status = store.lock_execution(cur, ctx.execution_id)
        if status is None:
            return Begin("stop")
        step_status, step_task_id, result = step_rows.step_status(cur, ctx.execution_id, ctx.step)
        if step_status == "succeeded" and step_task_id == task_id:
            done = Begin("done", result=result)
        elif status == "running" and step_rows.start_step(
            cur, ctx.execution_id, ctx.step, task_id, ctx.dispatch
        ):
            data, upstream = step_rows.inputs(cur, ctx.execution_id, ctx.step)
            return Begin("run", data, upstream)
        else:
            logger.info("step %s of %s not run: it is %s", ctx.step, ctx.execution_id, step_status)
            return Begin("stop")
    publish(ctx.execution_id)  # what a crash after the first run's commit left unsent
    return done


def complete_step(ctx: StepContext, task_id: str, result: Any) -> None:
    """Record the step's result, queue the steps now ready, finish the execution when done."""
    eid = ctx.execution_id
    with db.connection() as conn, conn.cursor() as cur:
        status = store.lock_execution(cur, eid)
        if not step_rows.finish_step(cur, eid, ctx.step, task_id, "succeeded", result):
            logger.info("step %s of %s finished after it was closed; result dropped", ctx.step, eid)
            return
        if status == "running":
            store.queue_ready_steps(cur, eid)
            results = store.sink_results(cur, eid)
            if results is not None:
                store.finish_execution(cur, eid, "succeeded", results, None)
                logger.info("workflow execution %s succeeded", eid)
    publish(eid)


def fail_step(ctx: StepContext, task_id: str, error: str) -> None:
    """Record the failure; fail the execution and skip every step that has not started."""
    eid = ctx.execution_id
    with db.connection() as conn, conn.cursor() as cur:
        status = store.lock_execution(cur, eid)
        if not step_rows.finish_step(cur, eid, ctx.step, task_id, "failed", None, error):
            return
        if status != "running":
            return
        why = f"skipped: step {ctx.step!r} failed"
        closed = store.close_steps(cur, eid, ("pending", "queued"), "skipped", why)
        store.finish_execution(cur, eid, "failed", None, f"step {ctx.step!r} failed: {error}")
    logger.warning("workflow execution %s failed at step %s: %s", eid, ctx.step, error)
    _revoke([t for t, old in closed if t and old == "queued"], terminate=False)


def note_retry(ctx: StepContext, error: str) -> None:
    """Keep the error of an attempt that will be retried (visible in the status)."""
    with db.connection() as conn, conn.cursor() as cur:
        step_rows.note_error(cur, ctx.execution_id, ctx.step, f"retrying after: {error}")


def cancel(execution_id: str) -> bool:
    """Cancel a running execution; ``False`` when it had already finished, ``NotFound``
    when there is none."""
    with db.connection() as conn, conn.cursor() as cur:
        status = store.lock_execution(cur, execution_id)
        if status is None:
            raise NotFound(f"no workflow execution {execution_id}")
        if status != "running":
            return False
        closed = store.close_steps(cur, execution_id, store.ACTIVE, "cancelled", "cancelled")
        store.finish_execution(cur, execution_id, "cancelled", None, "cancelled by request")
    _revoke([t for t, old in closed if t and old == "queued"], terminate=False)
    _revoke([t for t, old in closed if t and old == "running"], terminate=True)
    logger.info("workflow execution %s cancelled", execution_id)
    return True


def _revoke(task_ids: list[str], terminate: bool) -> None:
    if task_ids:
        app.control.revoke(task_ids, terminate=terminate)
