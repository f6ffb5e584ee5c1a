"""What happens across the real Redis broker: routing, priorities, depth, retries."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from celeryref import queues
from celeryref.adapters import redis_state
from celeryref.app.config import celery_config
from celeryref.celery_app import app
from celeryref.errors import BadRequestUpstream
from celeryref.observability import liveness
from celeryref.observability.health import check_worker, node_name
from celeryref.observability.progress import read_progress
from celeryref.observability.queue_depth import queue_depths
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.settings import settings
from celeryref.tasks import cpu_intensive, default, io_intensive, priority, scheduled
from celeryref.upstream.app import App
from tests.conftest import wait_for
from tests.integration.conftest import RecordingHandler, await_ping

ORDER_KEY = redis_state.key("test", "order")


@app.task(name="tests.record_order")
def record_order(label: str) -> str:
    """Append ``label`` to a Redis list: the order in which a worker ran tasks."""
    redis_state.client().rpush(ORDER_KEY, label)
    return label


def test_every_task_module_lands_on_its_own_queue(clean_state: None) -> None:
    """Given no workers, when one task per module is sent, each queue holds exactly one."""
    default.add.delay(1, 2)
    cpu_intensive.long_task.delay(1)
    io_intensive.fetch_url.delay("http://127.0.0.1:9/")
    priority.health_check.delay()
    scheduled.cleanup_expired_sessions.delay()

    assert queue_depths() == dict.fromkeys(queues.ALL_QUEUES, 1)


def test_top_priority_overtakes_a_backlog_on_the_same_queue(worker: Any) -> None:
    """Given 30 bulk tasks and 30 normal ones queued first, a priority-0 task runs first.

    On Redis 0 is the highest priority; a RabbitMQ-style ``x-max-priority`` setup
    would run the urgent task last here.
    """
    for i in range(30):
        record_order.apply_async((f"bulk-{i}",), priority=queues.PRIORITY_BULK)
        record_order.apply_async((f"normal-{i}",))  # task_default_priority
    urgent = record_order.apply_async(("urgent",), priority=queues.PRIORITY_TOP)
    assert queue_depths()[queues.DEFAULT] == 61

    with worker(queues.DEFAULT):
        urgent.get(timeout=30)
        while redis_state.client().llen(ORDER_KEY) < 61:
            time.sleep(0.05)
    order = [x.decode() for x in redis_state.client().lrange(ORDER_KEY, 0, -1)]

    assert order[0] == "urgent"
    # Every default-priority task ran before every bulk one.
    assert max(i for i, x in enumerate(order) if x.startswith("normal")) < min(
        i for i, x in enumerate(order) if x.startswith("bulk")
    )


def test_a_task_sent_by_name_gets_the_default_priority_not_the_top_one(
    clean_state: None,
) -> None:
    """The API and replays publish by name; without a priority such a message must wait
    in the normal-priority list, not jump every queue on Redis priority 0."""
    app.send_task("celeryref.tasks.default.add", args=[1, 2], queue=queues.DEFAULT)
    broker = redis.Redis.from_url(settings.broker_url)
    top, normal = queues.DEFAULT, f"{queues.DEFAULT}{queues.PRIORITY_SEP}{queues.PRIORITY_NORMAL}"
    assert (broker.llen(top), broker.llen(normal)) == (0, 1)


def test_celerys_own_send_task_puts_it_on_the_top_priority_there(clean_state: None) -> None:
    """Control (F1): Celery's own ``Celery.send_task`` with the same configuration ignores
    ``task_default_priority`` (celery#7516), so the by-name message lands on priority 0."""
    stock = Celery("stock-control", set_as_current=False)
    stock.conf.update(celery_config(settings))
    assert not isinstance(stock, App)
    try:
        stock.send_task("celeryref.tasks.default.add", args=[1, 2], queue=queues.DEFAULT)
    finally:
        stock.close()
    broker = redis.Redis.from_url(settings.broker_url)
    top, normal = queues.DEFAULT, f"{queues.DEFAULT}{queues.PRIORITY_SEP}{queues.PRIORITY_NORMAL}"
    assert (broker.llen(top), broker.llen(normal)) == (1, 0)


def test_long_task_reports_progress_then_succeeds(worker: Any) -> None:
    """A client polling ``long_task`` sees PROGRESS meta with current/total, then SUCCESS."""
    result = cpu_intensive.long_task.delay(8, work=200_000)
    seen: list[dict[str, Any]] = []
    with worker(queues.CPU_INTENSIVE):
        deadline = time.monotonic() + 60
        while not result.ready() and time.monotonic() < deadline:
            _, meta = read_progress(result)
            if meta is not None and meta not in seen:
                seen.append(meta)
            time.sleep(0.01)
        value = result.get(timeout=5)

    assert value["steps"] == 8
    assert seen, "no PROGRESS state was observed"
    assert all(m["total"] == 8 and 1 <= m["current"] <= 8 for m in seen)
    assert [m["current"] for m in seen] == sorted(m["current"] for m in seen)


def test_fetch_url_retries_5xx_with_backoff_then_succeeds(worker: Any, http_server: str) -> None:
    """A URL failing twice with 503 is fetched on the third attempt, after growing waits."""
    RecordingHandler.failures["/flaky"] = 2
    result = io_intensive.fetch_url.delay(f"{http_server}/flaky")
    with worker(queues.IO_INTENSIVE, pool="threads", concurrency=4):
        value = result.get(timeout=60)

    assert value["status"] == 200
    hits = RecordingHandler.hits["/flaky"]
    assert len(hits) == 3
    assert AsyncResult(result.id).retries == 2
    # Backoff grows: ~[0.5, 1] s before the first retry, ~[1, 2] s before the second.
    first_wait, second_wait = hits[1] - hits[0], hits[2] - hits[1]
    assert 0.5 <= first_wait < second_wait, (first_wait, second_wait)


def test_fetch_url_does_not_retry_4xx(worker: Any, http_server: str) -> None:
    """A 404 fails the task at once: one request, no retry."""
    result = io_intensive.fetch_url.delay(f"{http_server}/missing")
    with (
        worker(queues.IO_INTENSIVE, pool="threads", concurrency=4),
        pytest.raises(BadRequestUpstream),
    ):
        result.get(timeout=30)

    assert len(RecordingHandler.hits["/missing"]) == 1
    assert result.retries == 0
    (entry,) = dead_letters.list_entries()
    assert (entry.task_id, entry.category, entry.retries) == (result.id, "upstream_bad_request", 0)


def test_worker_healthcheck_proves_the_queue_is_consumed(worker: Any) -> None:
    """The healthcheck passes for each queue a worker consumes; it fails for a queue
    nobody consumes, for a queue the worker stopped consuming (``cancel_consumer``),
    and for every queue once the worker stopped."""
    node = node_name(queues.PRIORITY)
    with worker(queues.PRIORITY, queues.SCHEDULED):
        await_ping(node, "it never answered a ping")
        wait_for(lambda: check_worker(queues.SCHEDULED) is None or None, 10, "a proof")
        assert check_worker(queues.PRIORITY) is None
        assert "no worker here consumes 'default'" in (check_worker(queues.DEFAULT) or "")
        app.control.cancel_consumer(queues.SCHEDULED, destination=[node], reply=True)
        wait_for(
            lambda: check_worker(queues.SCHEDULED),
            liveness.BEAT_SECONDS + 5,
            "the cancelled queue's proof to go",
        )
        assert check_worker(queues.PRIORITY) is None
    assert check_worker(queues.PRIORITY) is not None


def test_liveness_beats_do_not_disturb_the_consumers_connection(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks keep flowing through many liveness beats (each a PING): the PING must not
    share the connection kombu's event loop waits on (a reply read by the wrong
    reader crashed the worker: "too many values to unpack")."""
    monkeypatch.setattr(liveness, "BEAT_SECONDS", 0.02)
    with worker(queues.DEFAULT) as w:
        await_ping(node_name(queues.DEFAULT), "it never answered a ping")
        deadline = time.monotonic() + 4
        ran = 0
        while time.monotonic() < deadline:
            assert default.add.delay(ran, 1).get(timeout=10) == ran + 1
            ran += 1
        assert check_worker(queues.DEFAULT) is None
        assert w.consumer.blueprint.state == 1, "the consumer stopped"  # bootsteps.RUN
    assert ran > 20
