"""F19: a Redis at its maxmemory (noeviction) refuses writes; the API answers 503.

On the spare Redis (the deployment's service) with a tiny ``maxmemory``: a publish
refused with ``OOM command not allowed`` is a 503 with ``Retry-After`` (never a 500),
nothing is queued, nothing stored is evicted, and once memory is freed the same
request is accepted.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from celeryref import queues
from celeryref.adapters import redis_state
from celeryref.api.main import RETRY_AFTER_SECONDS, api
from celeryref.api.routes import tasks as task_routes
from celeryref.app.config import celery_config
from celeryref.errors import classify
from celeryref.settings import settings
from celeryref.upstream.app import App
from tests.integration.conftest import SPARE_REDIS_PORT, on_spare

AUTH = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
ADD = {"task": "add", "args": {"x": 1, "y": 2}}
#: Bytes of each filler value.
FILLER_BYTES = 10_000


def queued(broker: redis.Redis) -> int:
    return sum(int(broker.llen(key)) for key in queues.redis_keys(queues.DEFAULT))


def snapshot(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every string key (not a filler) and its value, across the deployment's dbs."""
    found: dict[bytes, bytes | None] = {}
    for db in (settings.redis_broker_db, settings.redis_result_db, settings.redis_state_db):
        other = client.connection_pool.connection_kwargs | {"db": db}
        conn = redis.Redis(**other)
        for key in conn.scan_iter():
            if not key.startswith(b"fill:") and conn.type(key) == b"string":
                found[b"%d/" % db + key] = conn.get(key)
    return found


def fill(client: redis.Redis) -> tuple[int, int]:
    """Set a maxmemory 200 kB over what is used, write fillers until Redis refuses with
    OOM; return how many it took, and the maxmemory.

    Then the limit is pinned 100 kB under the memory Redis counts against it:
    ``used_memory`` minus ``mem_not_counted_for_evict`` (the AOF buffer, flushed each
    second, which held up to the fillers' 200 kB: pinned under ``used_memory`` alone,
    the next write got through now and then)."""
    limit = int(client.info("memory")["used_memory"]) + 200_000
    client.config_set("maxmemory", limit)
    count = 0
    while True:
        try:
            client.set(f"fill:{count}", b"x" * FILLER_BYTES)
        except redis.exceptions.OutOfMemoryError:
            break
        count += 1
        assert count < 10_000, "Redis never refused a write: no maxmemory?"
    memory = client.info("memory")
    counted = int(memory["used_memory"]) - int(memory.get("mem_not_counted_for_evict", 0))
    client.config_set("maxmemory", max(1, counted - 100_000))
    return count, limit


@pytest.fixture
def api_on_spare(
    spare_redis: tuple[str, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The API with its broker and state on the spare Redis."""
    spare = settings.model_copy(update={"redis_port": int(SPARE_REDIS_PORT)})
    celery = App("f19-api", set_as_current=False)
    celery.conf.update(celery_config(spare))
    state = redis.Redis.from_url(on_spare(settings.state_redis_url))
    monkeypatch.setattr(task_routes, "celery", celery)
    monkeypatch.setattr(redis_state, "client", lambda: state)
    with TestClient(api) as client:
        yield client


def test_a_full_redis_refuses_a_publish_with_503_and_evicts_nothing(
    spare_redis: tuple[str, redis.Redis], api_on_spare: TestClient
) -> None:
    """F19: filled to maxmemory, POST /tasks is a 503 + Retry-After saying Redis is full;
    no message is queued and every key stored before is intact; memory freed, the same
    POST is accepted."""
    _, broker = spare_redis
    broker.set("kept:before", "precious")  # stored before Redis fills up
    assert api_on_spare.post("/tasks", json=ADD, headers=AUTH).status_code == 202
    before = snapshot(broker)
    queued_before = queued(broker)
    assert broker.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    fillers, limit = fill(broker)
    try:
        refused = api_on_spare.post("/tasks", json=ADD, headers=AUTH)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert "full (maxmemory reached)" in refused.json()["detail"]
        assert "OOM" in refused.json()["detail"] or "maxmemory" in refused.json()["detail"]
        assert queued(broker) == queued_before  # nothing accepted
        assert snapshot(broker) == before  # nothing evicted
        assert broker.info("stats")["evicted_keys"] == 0
    finally:
        broker.delete(*(f"fill:{i}" for i in range(fillers)))
        broker.config_set("maxmemory", limit)  # unpinned: the limit the fillers reached
    accepted = api_on_spare.post("/tasks", json=ADD, headers=AUTH)
    assert accepted.status_code == 202, accepted.text
    assert queued(broker) == queued_before + 1
    assert broker.get("kept:before") == b"precious"


def test_a_write_refused_at_maxmemory_is_transient(spare_redis: tuple[str, redis.Redis]) -> None:
    """F19: a task whose Redis write (result, state) is refused at maxmemory is retried
    with backoff, not dead-lettered as a bug: memory frees as queues drain."""
    _, broker = spare_redis
    fillers, _ = fill(broker)
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError) as refused:
            broker.set("one:more", "x")
    finally:
        broker.delete(*(f"fill:{i}" for i in range(fillers)))
        broker.config_set("maxmemory", 0)
    classification = classify(refused.value)
    assert (classification.transient, classification.category) == (True, "redis_out_of_memory")
