"""Messages refused before any task runs (pickle, unknown task) are recorded, never run.

F20: the record is written before the message is acknowledged, within a bounded time;
Postgres hanging, it is kept in Redis; neither store taking it, the message is requeued.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.worker.consumer import Consumer
from kombu import Exchange, Producer

from celeryref import queues
from celeryref.adapters import redis_state
from celeryref.celery_app import app
from celeryref.observability.health import node_name
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.reliability.dead_letters import unrecorded
from celeryref.settings import settings
from celeryref.tasks import default
from celeryref.upstream import consumer as recording
from tests.conftest import wait_for


class Booby:
    """Unpickling this creates ``path``: proof that a body was deserialized."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def publish_raw(body: bytes, content_type: str, task: str) -> str:
    """Put a protocol-2 task message straight onto the `default` queue, bypassing Celery."""
    task_id = str(uuid.uuid4())
    with app.connection_for_write() as conn:  # the app's transport options (priority sep)
        Producer(conn.channel()).publish(
            body,
            exchange=Exchange(queues.DEFAULT, type="direct"),
            routing_key=queues.DEFAULT,
            content_type=content_type,
            content_encoding="binary" if content_type.endswith("serialize") else "utf-8",
            headers={"task": task, "id": task_id, "lang": "py", "retries": 0},
            priority=queues.PRIORITY_NORMAL,
        )
    return task_id


def test_a_pickle_message_is_never_unpickled_and_is_recorded(worker: Any, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    body = pickle.dumps(((Booby(str(marker)),), {}, {}))
    task_id = publish_raw(body, "application/x-python-serialize", default.add.name)
    with worker(queues.DEFAULT):
        assert default.add.delay(1, 2).get(timeout=10) == 3  # the worker carries on
    assert not marker.exists(), "the pickle body was deserialized"
    (entry,) = [e for e in dead_letters.list_entries() if e.task_id == task_id]
    assert (entry.category, entry.exception_type) == ("invalid_task_message", "ContentDisallowed")
    assert entry.headers["content_type"] == "application/x-python-serialize"
    assert entry.headers["body_prefix_hex"] == body[:256].hex()


def test_a_message_for_an_unknown_task_is_not_run_and_is_recorded(worker: Any) -> None:
    body = json.dumps([[1, 2], {}, {}]).encode()
    task_id = publish_raw(body, "application/json", "celeryref.tasks.default.rm_rf")
    with worker(queues.DEFAULT):
        assert default.add.delay(2, 2).get(timeout=10) == 4
    (entry,) = [e for e in dead_letters.list_entries() if e.task_id == task_id]
    assert (entry.category, entry.task_name) == ("unknown_task", "celeryref.tasks.default.rm_rf")


# -- F20: recorded before the ack, within a bound --------------------------------------

#: Seconds a refused message may hold up the next good one while Postgres hangs: the
#: insert's statement timeout, the Redis push, and slack for the worker's start.
STALL_BOUND = recording.RECORD_TIMEOUT_SECONDS * 2 + 8


@contextmanager
def dead_letters_locked() -> Iterator[Any]:
    """A Postgres where an insert into ``dead_letters`` hangs (reads still answer): another
    session holds the table in EXCLUSIVE mode until the end, or until the ``rollback()``
    of the connection yielded."""
    conn = psycopg2.connect(settings.database_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE dead_letters IN EXCLUSIVE MODE")
        yield conn
    finally:
        conn.rollback()
        conn.close()


def in_broker(task_id: str) -> bool:
    """Whether the message of ``task_id`` is still in Redis: queued or unacknowledged."""
    broker = redis.Redis.from_url(settings.broker_url)
    raws = [raw for key in queues.redis_keys(queues.DEFAULT) for raw in broker.lrange(key, 0, -1)]
    return any(task_id.encode() in raw for raw in [*raws, *broker.hvals("unacked")])


def kept_in_redis(task_id: str) -> list[dict[str, Any]]:
    raws = redis_state.client().lrange(unrecorded.UNRECORDED_KEY, 0, -1)
    return [e for e in map(json.loads, raws) if e["task_id"] == task_id]


def in_postgres(task_id: str) -> list[dead_letters.DeadLetter]:
    return [e for e in dead_letters.list_entries() if e.task_id == task_id]


def refuse_redis(entry: dict[str, Any]) -> None:
    raise redis.ConnectionError("Redis refuses the entry (test)")


@contextmanager
def consuming(consumer_cls: type[Consumer] | None = None) -> Iterator[None]:
    """A solo worker on ``default`` (the app's consumer unless ``consumer_cls``)."""
    extra = {"consumer_cls": consumer_cls} if consumer_cls else {}
    with start_worker(
        app,
        pool="solo",
        queues=[queues.DEFAULT],
        hostname=node_name(queues.DEFAULT),
        perform_ping_check=False,
        shutdown_timeout=30,
        **extra,
    ):
        yield


def test_postgres_hanging_a_refused_message_is_kept_in_redis_and_the_worker_goes_on(
    clean_state: None,
) -> None:
    """F20: the insert times out, the entry goes to Redis, then the message is acked and
    the next good message runs within the bound."""
    body = pickle.dumps(((1, 2), {}, {}))
    task_id = publish_raw(body, "application/x-python-serialize", default.add.name)
    good = default.add.delay(1, 2)
    with dead_letters_locked(), consuming():
        started = time.monotonic()
        assert good.get(timeout=STALL_BOUND) == 3
        assert time.monotonic() - started < STALL_BOUND
        (entry,) = kept_in_redis(task_id)
        assert (entry["category"], entry["exception_type"]) == (
            "invalid_task_message",
            "ContentDisallowed",
        )
        assert entry["headers"]["body_prefix_hex"] == body[:256].hex()
        assert not in_broker(task_id)  # acknowledged only once kept
    assert in_postgres(task_id) == []  # the insert that timed out left nothing behind


def test_neither_store_taking_it_a_refused_message_goes_back_to_its_queue(
    clean_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F20: Postgres hangs and Redis refuses the entry: the message is requeued, not acked,
    the worker still runs the next good message, and once Postgres answers the message
    is recorded on a later delivery."""
    monkeypatch.setattr(unrecorded, "keep", refuse_redis)
    task_id = publish_raw(pickle.dumps(((1, 2), {}, {})), "application/x-python-serialize", "x")
    good = default.add.delay(2, 3)
    with dead_letters_locked() as lock, consuming():
        assert good.get(timeout=STALL_BOUND) == 5
        wait_for(lambda: in_broker(task_id), 5, "the refused message back in Redis")
        assert in_postgres(task_id) == [] and kept_in_redis(task_id) == []
        lock.rollback()  # Postgres answers again
        (entry,) = wait_for(lambda: in_postgres(task_id), STALL_BOUND, "the record, later")
        wait_for(lambda: not in_broker(task_id), 5, "the recorded message acknowledged")
    assert entry.category == "unknown_task"


class AckThenRecord(Consumer):
    """Celery's own hook first (it acks or rejects), then the record: the order before F20."""

    def on_unknown_task(self, body: Any, message: Any, exc: BaseException) -> None:
        super().on_unknown_task(body, message, exc)
        recording.record(message, "unknown_task", exc)


def test_celerys_hooks_ack_before_a_record_could_keep_the_message(
    clean_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control (F20): Celery's ``Consumer`` hooks acknowledge the refused message
    themselves; a record written after them (as ours did) that fails loses the message
    and its evidence: in no queue, not unacknowledged, recorded nowhere."""
    monkeypatch.setattr(unrecorded, "keep", refuse_redis)
    task_id = publish_raw(pickle.dumps(((1, 2), {}, {})), "application/x-python-serialize", "x")
    good = default.add.delay(2, 3)
    assert AckThenRecord.__bases__ == (Consumer,)  # Celery's hooks, unchanged
    with dead_letters_locked(), consuming(AckThenRecord):
        assert good.get(timeout=STALL_BOUND) == 5
    assert not in_broker(task_id)
    assert in_postgres(task_id) == [] and kept_in_redis(task_id) == []
