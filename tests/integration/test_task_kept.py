"""Finding F15 against real workers: a task is never dropped because of what happened to
*another* task's process, to a retry that could not be published, or to a delivery that
could not be counted. Each loss Celery 5.7 would cause has a control test on Celery's own
classes, so the day upstream fixes it the control fails and the workaround can go."""

from __future__ import annotations

from typing import Any

import redis
from celery.result import AsyncResult

from celeryref import queues
from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.reliability import delivery_guard
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.settings import settings
from tests.conftest import wait_for
from tests.support import tasks as support


def runs_of(label: str) -> int:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM test_side_effects WHERE label = %s", (label,))
        (count,) = cur.fetchone()
    return int(count)


def unacked() -> int:
    return int(redis.Redis.from_url(settings.broker_url).hlen("unacked"))


def queued(queue: str) -> int:
    """Messages waiting in ``queue`` over all its priority lists (kombu's ``queue\\x06\\x16N``)."""
    broker = redis.Redis.from_url(settings.broker_url)
    keys = [queue, *broker.scan_iter(match=f"{queue}\x06\x16*")]
    return sum(int(broker.llen(key)) for key in keys)


def kill_the_next_task_with_an_earlier_ones_cancel(
    worker_process: Any, task: Any, label: str
) -> AsyncResult:
    """In a real worker with one prefork process, task A ends; B starts in the same process;
    then the worker cancels A as Celery cancels it after a lost broker connection when A's
    result had not been read yet (the race of F15: A still counts as running). Returns B."""
    node = worker_process(queues.DEFAULT, name="cancel")
    first = task.apply_async((f"{label}-a", 0), queue=queues.DEFAULT)
    assert first.get(timeout=30)["runs"] == 1
    second = task.apply_async((label, 3), queue=queues.DEFAULT)
    wait_for(lambda: runs_of(label) == 1, 30, "the second task to start")

    def cancel() -> dict[str, Any] | None:
        (reply,) = app.control.broadcast(
            "cancel_finished_request",
            arguments={"task_id": first.id, "running_id": second.id},
            destination=[node],
            reply=True,
            timeout=5,
        )
        answer: dict[str, Any] = reply[node]
        return answer if "ok" in answer else None  # "not started" until the pool says so

    wait_for(cancel, 15, "the worker to cancel the first task")
    return second


def test_a_task_killed_by_another_requests_cancel_runs_again(worker_process: Any) -> None:
    """With our request the innocent task goes back to the queue and runs to the end."""
    second = kill_the_next_task_with_an_earlier_ones_cancel(worker_process, support.hold, "b")
    assert second.get(timeout=60) == {"label": "b", "runs": 2}


def test_celerys_own_request_revokes_it_there(worker_process: Any) -> None:
    """Control (F15): Celery's request marks the innocent task REVOKED and acknowledges it; it is
    never run again (the drill lost in the Redis restart of the fault suite)."""
    second = kill_the_next_task_with_an_earlier_ones_cancel(
        worker_process, support.hold_stock_request, "b"
    )
    wait_for(lambda: second.state == "REVOKED", 30, "the second task to be revoked")
    wait_for(lambda: unacked() == 0, 30, "its message to be acknowledged")
    assert (runs_of("b"), queued(queues.DEFAULT)) == (1, 0)


def test_a_retry_that_cannot_be_published_puts_the_message_back(worker: Any) -> None:
    """The retry's publish fails (the broker is unreachable): the message is requeued and
    runs again instead of being dropped as FAILURE."""
    with worker(queues.DEFAULT):
        result = support.retry_unpublished.apply_async(("r",), queue=queues.DEFAULT)
        assert result.get(timeout=30) == {"label": "r", "runs": 2}
    assert dead_letters.list_entries() == []


def test_celerys_own_task_drops_it_there(worker: Any) -> None:
    """Control (F15): Celery turns the failed publish into ``Reject(requeue=False)``: FAILURE,
    the message gone, no dead letter, one run."""
    with worker(queues.DEFAULT):
        result = support.retry_unpublished_stock.apply_async(("r",), queue=queues.DEFAULT)
        wait_for(lambda: result.state == "FAILURE", 30, "the task to fail")
    assert (runs_of("r"), queued(queues.DEFAULT)) == (1, 0)
    assert dead_letters.list_entries() == []


def test_a_delivery_that_cannot_be_counted_is_dead_lettered(worker: Any) -> None:
    """The delivery counter cannot be incremented (here: its key holds a list): the task is
    not run blind, and it is not dropped either; it is dead-lettered with Redis's reason."""
    task_id = "uncountable"
    delivery_guard.client().rpush(delivery_guard.delivery_key(task_id, 0), "not a counter")
    with worker(queues.DEFAULT, queues.PRIORITY):
        support.side_effect.apply_async(("never",), task_id=task_id, queue=queues.DEFAULT)
        entry = wait_for(dead_letters.list_entries, 30, "the dead letter")[0]
    assert (entry.task_id, entry.category) == (task_id, "unexpected")
    assert "WRONGTYPE" in entry.exception
    assert runs_of("never") == 0
