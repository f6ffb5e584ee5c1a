"""F24: time limits on the threads pool (``worker-io``), with real worker processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.concurrency import thread
from celery.exceptions import TimeLimitExceeded

from celeryref import queues
from celeryref.adapters import db, redis_state
from celeryref.celery_app import app
from celeryref.reliability import idempotency
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.settings import settings
from celeryref.upstream import thread_pool
from tests.conftest import ROOT, wait_for
from tests.integration.test_task_kept import runs_of
from tests.support import tasks as support

#: What the pool logs when it drops the outcome of a thread past its hard limit.
DROPPED = "dropping the outcome of a task past its hard time limit"
#: Seconds of work of the task, whose ``time_limit`` is 1 s.
WORK_SECONDS = 3.0


def custom_pool(cls: type) -> dict[str, str]:
    """The environment of ``celery worker --pool custom`` running ``cls`` (as ``worker-io``
    does in docker-compose.yml)."""
    return {"CELERY_CUSTOM_WORKER_POOL": f"{cls.__module__}:{cls.__name__}"}


def key_row() -> tuple[str, float] | None:
    """The one idempotency key of ``slow_io``: its state and lease (seconds)."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT state, extract(epoch FROM locked_until - created_at)::float"
            " FROM idempotency_keys WHERE task_name = %s",
            (support.slow_io.name,),
        )
        row = cur.fetchone()
    return (row[0], row[1]) if row else None


def test_a_task_past_its_time_limit_fails_on_the_thread_pool(worker_process: Any) -> None:
    """Given a task with ``time_limit=1`` doing 3 s of blocking work on ``worker-io``'s pool,
    it fails with ``TimeLimitExceeded`` (dead letter ``hard_time_limit``) at its limit, its
    key's lease follows its own limit, and its late finish overwrites nothing."""
    pool = custom_pool(thread_pool.TaskPool)
    worker_process(queues.IO_INTENSIVE, name="io-bounded", pool="custom", concurrency=4, env=pool)
    sent = time.monotonic()
    result = support.slow_io.apply_async(("bounded", WORK_SECONDS), queue=queues.IO_INTENSIVE)
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=30)
    assert time.monotonic() - sent < WORK_SECONDS  # reported at the limit, not after the work

    (entry,) = wait_for(dead_letters.list_entries, 10, "the dead letter")
    assert (entry.task_id, entry.category) == (result.id, "hard_time_limit")
    _, lease = wait_for(key_row, 5, "the idempotency key")
    assert lease == idempotency.lease_for(1)  # not TASK_TIME_LIMIT's 300 + 30

    # The thread finishes in the background; the pool drops its outcome (logged after
    # Celery's tracer would have stored it): the result stays the time limit's.
    log = ROOT / "build" / "test-workers" / "io-bounded.log"
    wait_for(lambda: DROPPED in log.read_text(), 10, "the thread to finish")
    assert key_row() == ("succeeded", lease)  # its effect happened: kept, not run again
    assert support.app.AsyncResult(result.id).state == "FAILURE"
    assert len(dead_letters.list_entries()) == 1


def test_celerys_own_thread_pool_lets_it_succeed(worker_process: Any) -> None:
    """Control (F24): on Celery's stock threads pool the same task ignores ``time_limit=1``
    and succeeds after its 3 s."""
    pool = custom_pool(thread.TaskPool)  # what `--pool threads` runs
    worker_process(queues.IO_INTENSIVE, name="io-stock", pool="custom", concurrency=4, env=pool)
    result = support.slow_io.apply_async(("stock", WORK_SECONDS), queue=queues.IO_INTENSIVE)
    assert result.get(timeout=30) == {"label": "stock", "runs": 1}


def stop_a_thread_task_at_the_soft_shutdown_end(
    worker_process: Any, monkeypatch: pytest.MonkeyPatch, cls: type, label: str
) -> Path:
    """Run a long task on a custom-pool worker running ``cls``, stop the worker with a
    0.5 s soft-shutdown window (Celery then cancels the running task); the worker's log."""
    monkeypatch.setenv("WORKER_SOFT_SHUTDOWN_TIMEOUT", "0.5")
    name = f"io-stop-{label}"
    node = worker_process(queues.IO_INTENSIVE, name=name, pool="custom", env=custom_pool(cls))
    support.hold_until_released.apply_async((label,), queue=queues.IO_INTENSIVE)
    wait_for(lambda: runs_of(label) == 1, 30, "the task to start")
    (stats,) = app.control.inspect(destination=[node], timeout=5).stats().values()
    os.kill(stats["pid"], signal.SIGQUIT)  # cold shutdown after the soft window
    return ROOT / "build" / "test-workers" / f"{name}.log"


def queued_io() -> int:
    broker = redis.Redis.from_url(settings.broker_url)
    return sum(int(broker.llen(key)) for key in queues.redis_keys(queues.IO_INTENSIVE))


def test_control_celerys_thread_pool_crashes_when_the_soft_shutdown_cancels(
    worker_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control (F26): Celery's threads pool cannot terminate a job: the cancel at the end of
    the soft-shutdown window raises ``NotImplementedError`` and the shutdown crashes."""
    log = stop_a_thread_task_at_the_soft_shutdown_end(
        worker_process, monkeypatch, thread.TaskPool, "stock"
    )
    try:
        wait_for(lambda: "does not implement kill_job" in log.read_text(), 30, "the crash")
    finally:
        redis_state.client().set(support.state_key("release", "stock"), 1)  # the thread ends


def test_the_soft_shutdown_end_lets_a_thread_task_finish_once(
    worker_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F26: with our pool the cancel is accepted (a thread cannot be killed), the shutdown
    goes on, and the thread finishes: the task succeeds once and its message is
    acknowledged, neither requeued to run again nor left behind."""
    log = stop_a_thread_task_at_the_soft_shutdown_end(
        worker_process, monkeypatch, thread_pool.TaskPool, "ours"
    )
    wait_for(lambda: "cannot be stopped in a thread" in log.read_text(), 30, "the cancel")
    redis_state.client().set(support.state_key("release", "ours"), 1)  # the thread ends
    wait_for(lambda: "Cold shutdown" in log.read_text(), 30, "the shutdown")
    broker = redis.Redis.from_url(settings.broker_url)
    wait_for(lambda: broker.hlen("unacked") == 0, 30, "the message acknowledged")
    assert (queued_io(), runs_of("ours")) == (0, 1)
    assert "does not implement kill_job" not in log.read_text()
