"""F16 against a real Redis that restarts: a worker stores a finished task's result
across the restart instead of the task being recorded FAILURE with its effect done.

Celery 5.7's Redis backend reads the stored state before it writes a result; the read
is outside kombu's retry policy, so only ``result_backend_always_retry`` (our
``RESULT_STORE_RETRIES``, set for the workers in compose) covers it.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any

import pytest
import redis
from celery import Celery, states
from celery.backends.base import BaseBackend
from celery.utils import uuid

from celeryref.app.config import celery_config
from celeryref.settings import settings
from tests.integration.conftest import on_spare, spare

#: The workers' values in docker-compose.yml.
WORKER_REDIS_MAX_RETRIES = 20
WORKER_RESULT_STORE_RETRIES = 20


def backend(result_store_retries: int) -> BaseBackend:
    """The result backend of a process configured like a worker, on the spare Redis."""
    s = settings.model_copy(
        update={
            "redis_max_retries": WORKER_REDIS_MAX_RETRIES,
            "result_store_retries": result_store_retries,
        }
    )
    celery = Celery("f16-test", set_as_current=False)
    celery.conf.update(celery_config(s))
    celery.conf.result_backend = on_spare(s.result_backend_url)
    store: BaseBackend = celery.backend
    return store


def stored_state(task_id: str) -> tuple[str, Any]:
    meta = backend(0).get_task_meta(task_id, cache=False)
    return meta["status"], meta["result"]


def test_a_worker_stores_a_result_across_a_redis_restart(
    spare_redis: tuple[str, redis.Redis],
) -> None:
    store = backend(WORKER_RESULT_STORE_RETRIES)
    task_id = uuid()
    store.store_result(task_id, None, states.STARTED)
    retrying = threading.Event()
    store.on_backend_retryable_error = lambda exc: retrying.set()  # type: ignore[method-assign]
    outcome: dict[str, Any] = {}

    def finish() -> None:
        try:
            outcome["result"] = store.store_result(task_id, 42, states.SUCCESS)
        except Exception as exc:  # the assertion below shows it
            outcome["error"] = exc

    stop = spare("stop", "redis")
    assert stop.returncode == 0, stop.stderr
    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    try:
        assert retrying.wait(60), "the store never failed and retried while Redis was down"
    finally:
        start = spare("start", "redis")
    assert start.returncode == 0, start.stderr
    thread.join(120)
    assert not thread.is_alive(), "the store did not end within 120 s of Redis's restart"
    assert "error" not in outcome, outcome
    assert stored_state(task_id) == (states.SUCCESS, 42)


def test_celerys_default_gives_up_on_the_read_before_the_write(
    spare_redis: tuple[str, redis.Redis],
) -> None:
    """Control: without RESULT_STORE_RETRIES the same store fails at once, in the read
    kombu's retry policy (20 retries here) does not cover; Celery then records the task
    FAILURE although it succeeded."""
    store = backend(0)
    task_id = uuid()
    store.store_result(task_id, None, states.STARTED)
    stop = spare("stop", "redis")
    assert stop.returncode == 0, stop.stderr
    try:
        with pytest.raises(redis.ConnectionError) as failed:
            store.store_result(task_id, 42, states.SUCCESS)
    finally:
        start = spare("up", "-d", "--wait", "redis")
    assert start.returncode == 0, start.stderr
    frames = [frame.name for frame in traceback.extract_tb(failed.value.__traceback__)]
    assert "_get_task_meta_for" in frames, frames
    assert stored_state(task_id) == (states.STARTED, None)
