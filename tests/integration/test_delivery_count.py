"""F22 against real worker processes: only deliveries that died without an outcome count.

A long task requeued on purpose (the cancel at the end of the soft-shutdown window, a
process terminated for another request's cancel, F15) is run again however often that
happens; a task whose process is killed every time is still refused after
``MAX_DELIVERIES`` runs (the control: the guard still works).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import redis

from celeryref import queues
from celeryref.adapters import redis_state
from celeryref.celery_app import app
from celeryref.reliability import delivery_guard
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.settings import settings
from tests.conftest import wait_for
from tests.integration.test_task_kept import kill_the_next_task_with_an_earlier_ones_cancel, runs_of
from tests.support import tasks as support


def deliveries(task_id: str) -> int:
    """Deliveries of attempt 0 of ``task_id`` counted as deaths so far."""
    return int(delivery_guard.client().get(delivery_guard.delivery_key(task_id, 0)) or 0)


def queued() -> int:
    """Messages waiting in the ``default`` queue (all its priority lists)."""
    broker = redis.Redis.from_url(settings.broker_url)
    return sum(int(broker.llen(key)) for key in queues.redis_keys(queues.DEFAULT))


def pids(label: str) -> list[int]:
    return [int(p) for p in redis_state.client().lrange(support.state_key("pids", label), 0, -1)]


def test_a_long_task_requeued_by_every_soft_shutdown_is_never_refused(
    worker_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a task longer than the soft-shutdown window, when its worker is stopped more
    than MAX_DELIVERIES times while it runs, then it is requeued each time and finally
    runs to the end, never dead-lettered as a redelivery loop."""
    monkeypatch.setenv("WORKER_SOFT_SHUTDOWN_TIMEOUT", "0.5")
    result = support.hold_until_released.apply_async(("long",), queue=queues.DEFAULT)
    stops = settings.max_deliveries + 1
    for run in range(1, stops + 1):
        node = worker_process(queues.DEFAULT, name=f"deploy-{run}")
        wait_for(lambda: runs_of("long") == run, 30, f"run {run} to start")  # noqa: B023
        (stats,) = app.control.inspect(destination=[node], timeout=5).stats().values()
        os.kill(stats["pid"], signal.SIGQUIT)  # cold shutdown after the soft window
        wait_for(lambda: queued() == 1, 30, f"stop {run} to requeue the task")
        assert deliveries(result.id) == 0

    redis_state.client().set(support.state_key("release", "long"), 1)
    worker_process(queues.DEFAULT, queues.PRIORITY, name="deploy-last")
    assert result.get(timeout=30) == {"label": "long", "runs": stops + 1}
    assert dead_letters.list_entries() == []


def test_a_task_killed_by_another_requests_cancel_is_not_counted(worker_process: Any) -> None:
    """The F15 requeue (a process terminated for another request's cancel) takes its
    delivery back: the task runs twice and only the run that finished is counted."""
    second = kill_the_next_task_with_an_earlier_ones_cancel(worker_process, support.hold, "b")
    assert second.get(timeout=60) == {"label": "b", "runs": 2}
    assert deliveries(second.id) == 1


def test_a_task_whose_process_is_killed_every_time_is_still_refused(
    worker_process: Any,
) -> None:
    """Control: a task whose pool process is SIGKILLed on each of its MAX_DELIVERIES runs
    is refused at the next delivery and dead-lettered as a redelivery loop."""
    worker_process(queues.DEFAULT, queues.PRIORITY, name="killed")
    result = support.hold_until_released.apply_async(("doomed",), queue=queues.DEFAULT)
    for run in range(1, settings.max_deliveries + 1):
        (pid,) = wait_for(lambda: pids("doomed")[run - 1 : run], 30, f"run {run}")  # noqa: B023
        os.kill(pid, signal.SIGKILL)

    entry = wait_for(dead_letters.list_entries, 30, "the dead letter")[0]
    assert (entry.task_id, entry.category) == (result.id, "redelivery_loop")
    assert f"delivered {settings.max_deliveries + 1} times" in entry.exception
    assert runs_of("doomed") == settings.max_deliveries
