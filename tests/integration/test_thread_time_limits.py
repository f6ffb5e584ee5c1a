"""F24: time limits on the threads pool (``worker-io``), with real worker processes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.concurrency import thread
from celery.exceptions import TimeLimitExceeded

from celeryref import queues
from celeryref.adapters import db
from celeryref.reliability import idempotency
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.upstream import thread_pool
from tests.conftest import ROOT, wait_for
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
