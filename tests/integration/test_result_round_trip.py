"""P2: a task state is stored in one round trip, atomically, and never over a SUCCESS.

:mod:`celeryref.upstream.result_backend` against a real Redis: one ``EVALSHA`` per
state write where Celery's Redis backend makes two round trips (``GET``, then
``MULTI SETEX PUBLISH EXEC``; the control), with the same stored value, expiry and
``PUBLISH``, and the same rule that a stored ``SUCCESS`` is never overwritten.
STARTED is stored but not published (issue 15); Celery's backend publishes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import states
from celery.app.task import Context
from celery.backends.redis import RedisBackend as CeleryRedisBackend
from redis.connection import AbstractConnection

from celeryref import queues
from celeryref.celery_app import app
from celeryref.reliability import delivery_guard
from celeryref.tasks.default import add
from celeryref.upstream import result_backend

#: The tier's Redis, up and empty (the file alone, or first in a random order, needs it).
pytestmark = pytest.mark.usefixtures("clean_state")


@contextmanager
def round_trips() -> Iterator[list[Any]]:
    """Count what redis-py sends (one send per command or pipeline: a round trip)."""
    sent: list[Any] = []
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(bytes(command[0] if isinstance(command, list) else command)[:40])
        return original(self, command, *args, **kwargs)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def warm(backend: Any) -> None:
    """Open the connection and load the script outside the counted part."""
    backend.store_result(str(uuid.uuid4()), None, states.STARTED)


def test_the_app_stores_results_with_our_backend() -> None:
    assert type(app.backend) is result_backend.RedisBackend


def test_a_state_is_stored_in_one_round_trip_with_celerys_value_and_expiry() -> None:
    backend = app.backend
    task_id = str(uuid.uuid4())
    pubsub = backend.client.pubsub()  # takes a connection of its own from the pool
    pubsub.subscribe(backend.get_key_for_task(task_id))
    pubsub.get_message(timeout=5)
    warm(backend)
    with round_trips() as sent:
        backend.store_result(task_id, 42, states.SUCCESS)
    assert len(sent) == 1, sent
    stored = backend.get_task_meta(task_id)
    assert (stored["status"], stored["result"]) == (states.SUCCESS, 42)
    ttl = backend.client.ttl(backend.get_key_for_task(task_id))
    assert 0 < ttl <= backend.expires
    published = pubsub.get_message(timeout=5)
    assert published is not None and backend.decode(published["data"])["result"] == 42
    pubsub.close()


def test_a_stored_success_is_never_overwritten() -> None:
    """A late STARTED or FAILURE (a duplicate run) leaves the SUCCESS as it was."""
    backend = app.backend
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, None, states.STARTED)
    backend.store_result(task_id, "done", states.SUCCESS)
    backend.store_result(task_id, None, states.STARTED)
    backend.store_result(task_id, RuntimeError("late"), states.FAILURE)
    stored = backend.get_task_meta(task_id)
    assert (stored["status"], stored["result"]) == (states.SUCCESS, "done")


@pytest.mark.parametrize("first", [states.STARTED, states.RETRY, states.FAILURE])
def test_any_other_state_is_replaced(first: str) -> None:
    backend = app.backend
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, None if first != states.FAILURE else ValueError("x"), first)
    backend.store_result(task_id, 7, states.SUCCESS)
    assert backend.get_task_meta(task_id)["status"] == states.SUCCESS


def test_control_celerys_backend_reads_then_writes_in_two_round_trips() -> None:
    """Control (P2): Celery's own Redis backend, same app settings: GET, then the write."""
    stock = CeleryRedisBackend(app=app, url=app.conf.result_backend)
    warm(stock)
    with round_trips() as sent:
        stock.store_result(str(uuid.uuid4()), 42, states.SUCCESS)
    assert len(sent) == 2, sent


def test_the_started_write_counts_the_delivery_in_the_same_round_trip() -> None:
    """The STARTED write also counts the delivery (F22's cap) and hands the count to the
    task on its request: one round trip for both, where the task counted in a second."""
    backend = app.backend
    request = Context(id=str(uuid.uuid4()), retries=0)
    warm(backend)
    with round_trips() as sent:
        backend.store_result(request.id, {"pid": 1}, states.STARTED, request=request)
    assert len(sent) == 1, sent
    assert request.delivery_count == 1
    backend.store_result(request.id, {"pid": 1}, states.STARTED, request=request)
    assert request.delivery_count == 2
    counted = delivery_guard.client().get(delivery_guard.delivery_key(request.id, 0))
    assert int(counted or 0) == 2
    assert backend.get_task_meta(request.id)["status"] == states.STARTED


def test_a_task_whose_started_write_counted_does_not_count_again(worker: Any) -> None:
    """Run by a worker: the task reads the count from its request; counted once."""
    with worker(queues.DEFAULT):
        result = add.apply_async((1, 2), queue=queues.DEFAULT)
        assert result.get(timeout=30) == 3
    counted = delivery_guard.client().get(delivery_guard.delivery_key(result.id, 0))
    assert int(counted or 0) == 1


def published_states(backend: Any, states_to_store: list[str]) -> list[str]:
    """Store these states of one task with ``backend``; the states a client subscribed
    to the task's channel received, in order, up to the last (a ready state, always
    published: the messages before it arrived before it, so none is awaited in vain)."""
    task_id = str(uuid.uuid4())
    pubsub = app.backend.client.pubsub()
    pubsub.subscribe(app.backend.get_key_for_task(task_id))
    pubsub.get_message(timeout=5)
    request = Context(id=task_id, retries=0)
    for state in states_to_store:
        backend.store_result(task_id, {"step": state}, state, request=request)
        assert backend.get_task_meta(task_id)["status"] == state  # stored either way
    seen: list[str] = []
    while not seen or seen[-1] not in states.READY_STATES:
        message = pubsub.get_message(timeout=5)
        assert message is not None, f"no ready state published after {seen}"
        seen.append(app.backend.decode(message["data"])["status"])
    pubsub.close()
    return seen


def test_started_is_stored_but_not_published_while_progress_and_success_are() -> None:
    """A waiting client acts on ready states only; STARTED reached it for nothing."""
    stored = [states.STARTED, "PROGRESS", states.SUCCESS]
    assert published_states(app.backend, stored) == ["PROGRESS", states.SUCCESS]


def test_control_celerys_backend_publishes_started_too() -> None:
    stock = CeleryRedisBackend(app=app, url=app.conf.result_backend)
    stored = [states.STARTED, "PROGRESS", states.SUCCESS]
    assert published_states(stock, stored) == stored
