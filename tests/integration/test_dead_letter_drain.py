"""F21 against real workers: a dead letter is never lost when its stores are away.

Postgres is "down" for a worker process started with ``POSTGRES_PORT`` on a port nothing
listens on (the tier's Postgres keeps serving the test process, as it does the workers
the tier shares it with); Redis refuses the fallback list when its key holds a string.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from celeryref import queues
from celeryref.adapters import redis_state
from celeryref.errors import InvalidArguments
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.reliability.dead_letters import unrecorded
from celeryref.settings import settings
from celeryref.tasks import priority
from celeryref.tasks.scheduled import dead_letters as drain_tasks
from tests.conftest import ROOT, wait_for
from tests.integration.conftest import RecordingHandler
from tests.support import tasks as support

#: A port nothing listens on: the worker's Postgres connections are refused.
NO_POSTGRES = "1"


def kept_in_redis() -> list[dict[str, Any]]:
    raw = redis_state.client().lrange(unrecorded.UNRECORDED_KEY, 0, -1)
    return [json.loads(r) for r in raw]


def recovery_alerts() -> list[dict[str, Any]]:
    return [a for a in RecordingHandler.posted if "recovered" in a["title"]]


def test_a_dead_letter_kept_in_redis_is_drained_into_the_store_exactly_once(
    worker_process: Any,
    worker: Any,
    http_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given Postgres away, a permanent failure is kept in Redis; when Postgres is back the
    drain stores it once (a drain that died after its insert, a second drain: no copy),
    removes it from Redis and alerts operators once."""
    monkeypatch.setenv("POSTGRES_PORT", NO_POSTGRES)
    worker_process(queues.DEFAULT, name="no-postgres")
    monkeypatch.undo()
    result = support.invalid_input.apply_async(("order-9",), queue=queues.DEFAULT)
    with pytest.raises(InvalidArguments):
        result.get(timeout=30)
    (kept,) = wait_for(kept_in_redis, 10, "the dead letter in Redis")
    assert (kept["task_id"], kept["exception_type"]) == (result.id, "InvalidArguments")
    assert dead_letters.list_entries() == []

    # A drain that committed its insert and died before removing the entry from Redis.
    first_id = dead_letters.restore(kept["key"], kept)

    local = settings.model_copy(update={"alert_webhook_url": f"{http_server}/hook"})
    monkeypatch.setattr(priority, "settings", local)
    with worker(queues.SCHEDULED, queues.PRIORITY):
        moved = drain_tasks.drain_unrecorded.delay().get(timeout=30)
        again = drain_tasks.drain_unrecorded.delay().get(timeout=30)
        wait_for(recovery_alerts, 20, "the recovery alert")

    assert (moved["moved"], again["moved"]) == ([first_id], [])
    (entry,) = dead_letters.list_entries()
    assert (entry.id, entry.task_id, entry.exception) == (first_id, result.id, "order-9 is invalid")
    assert kept_in_redis() == []
    (alert,) = recovery_alerts()
    assert f"#{first_id}" in alert["body"]


def test_with_both_stores_down_the_message_is_kept_and_its_own_error_reported(
    worker_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given Postgres away and the Redis fallback refusing writes, a failed task's message
    is not acknowledged: it comes back, and the error reported is the task's own. Once
    Redis takes writes again, the next run's dead letter is kept there."""
    redis_state.client().set(unrecorded.UNRECORDED_KEY, "not a list")
    monkeypatch.setenv("POSTGRES_PORT", NO_POSTGRES)
    worker_process(queues.DEFAULT, name="no-stores")
    monkeypatch.undo()
    result = support.invalid_while_stores_down.apply_async(("order-5",), queue=queues.DEFAULT)
    runs = support.state_key("runs", "order-5")
    wait_for(lambda: redis_state.client().get(runs) == b"2", 60, "the message to come back")
    redis_state.client().delete(unrecorded.UNRECORDED_KEY)  # Redis takes writes again

    with pytest.raises(InvalidArguments, match=r"order-5 is invalid \(run 2\)"):
        result.get(timeout=30)
    (kept,) = wait_for(kept_in_redis, 10, "the dead letter in Redis")
    assert (kept["task_id"], kept["exception"]) == (result.id, "order-5 is invalid (run 2)")
    log = (ROOT / "build" / "test-workers" / "no-stores.log").read_text()
    assert "failed with InvalidArguments: order-5 is invalid (run 1)" in log
    assert "reject requeue=True: order-5 is invalid (run 1)" in log  # Celery's own report


def test_a_worker_starting_drains_what_waits_in_redis(worker_process: Any) -> None:
    """A worker that starts while dead letters wait in Redis sends the drain at once."""
    unrecorded.keep(
        {
            "task_id": "kept-1",
            "task_name": "tests.support.invalid_input",
            "args": ["x"],
            "kwargs": {},
            "headers": {},
            "exception_type": "InvalidArguments",
            "exception": "x is invalid",
            "category": "invalid_arguments",
            "severity": "medium",
            "retries": 0,
        }
    )
    worker_process(queues.SCHEDULED, name="drainer")
    wait_for(lambda: unrecorded.pending() == 0, 30, "the drain at start")
    (entry,) = dead_letters.list_entries()
    assert (entry.task_id, entry.exception_type) == ("kept-1", "InvalidArguments")
