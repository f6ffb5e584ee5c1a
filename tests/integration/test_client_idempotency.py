"""F18: a client's ``idempotency_key`` makes POST /tasks, /workflows and /jobs at most once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import kombu.exceptions
import pytest
import redis
from celery import Celery
from fastapi.testclient import TestClient

from celeryref import queues
from celeryref.adapters import db
from celeryref.api.main import api
from celeryref.mapreduce.generate import generate
from celeryref.settings import settings
from tests.conftest import wait_for
from tests.integration import wf_support

domain_tables = wf_support.domain_tables

AUTH = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
RECORDS = [{"id": 1, "name": "a", "value": 3}, {"id": 2, "name": "b", "value": 5}]


@pytest.fixture
def client(domain_tables: None) -> Iterator[TestClient]:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE mapreduce_jobs, client_submissions CASCADE")
    with TestClient(api) as c:
        yield c


def rows(table: str) -> int:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (a constant of this test)
        found = cur.fetchone()
    assert found is not None
    return int(found[0])


def queued(queue: str) -> int:
    broker = redis.Redis.from_url(settings.broker_url)
    return sum(int(broker.llen(key)) for key in queues.redis_keys(queue))


def post_twice(client: TestClient, path: str, body: dict[str, Any]) -> tuple[Any, Any]:
    first, second = (client.post(path, json=body, headers=AUTH) for _ in range(2))
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    return first.json(), second.json()


def test_the_same_key_twice_on_tasks_is_one_task(client: TestClient, worker: Any) -> None:
    """Two posts with one key: the same task id and body, one message, one run; the same
    key for other arguments is a 422 naming the key (before F18: two ids, two runs)."""
    body = {"task": "add", "args": {"x": 2, "y": 3}, "idempotency_key": "order-1"}
    first, second = post_twice(client, "/tasks", body)
    assert first == second
    assert queued(queues.DEFAULT) == 1
    with worker(queues.DEFAULT):
        done = wait_for(
            lambda: (
                (b := client.get(first["status_url"], headers=AUTH).json())["state"] == "SUCCESS"
                and b
            ),
            30,
            "the task",
        )
        assert client.post("/tasks", json=body, headers=AUTH).json() == first  # after it ran
    assert done["result"] == 5
    other = client.post("/tasks", json={**body, "args": {"x": 2, "y": 4}}, headers=AUTH)
    assert other.status_code == 422 and "order-1" in other.text, other.text


def test_a_send_the_api_could_not_confirm_and_its_resend_run_once(
    client: TestClient, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F25: Redis took the message but the API never learnt it (the reply lost, kombu gave
    up): 503, the key is not kept, the client resends under the key and gets a second task
    id. The worker claims the client's key, so the two messages are one run: one key row,
    owned by one of the two, and both ids report its result (before: no key row, two runs)."""
    sent = Celery.send_task

    def lost_reply(app: Celery, *args: Any, **kwargs: Any) -> Any:
        sent(app, *args, **kwargs)
        raise kombu.exceptions.OperationalError("Timeout reading from socket")

    body = {"task": "add", "args": {"x": 20, "y": 22}, "idempotency_key": "order-lost-reply"}
    with monkeypatch.context() as patch:
        patch.setattr(Celery, "send_task", lost_reply)
        unsure = client.post("/tasks", json=body, headers=AUTH)
    assert unsure.status_code == 503, unsure.text
    resent = client.post("/tasks", json=body, headers=AUTH)
    assert resent.status_code == 202, resent.text
    assert queued(queues.DEFAULT) == 2
    with worker(queues.DEFAULT):
        wait_for(lambda: queued(queues.DEFAULT) == 0, 30, "both messages taken")
        done = wait_for(
            lambda: (
                (b := client.get(resent.json()["status_url"], headers=AUTH).json())["state"]
                == "SUCCESS"
                and b
            ),
            30,
            "the resent task",
        )
    assert done["result"] == 42
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT state, owner_task_id FROM idempotency_keys WHERE key LIKE %s",
            ("%:order-lost-reply",),
        )
        keys = cur.fetchall()
    assert len(keys) == 1 and keys[0][0] == "succeeded", keys


def test_the_same_key_twice_on_workflows_is_one_execution(client: TestClient) -> None:
    """Two posts with one key, the first still running: one execution, the same body."""
    body = {"workflow": "data_processing", "input": {"records": RECORDS}, "idempotency_key": "w"}
    first, second = post_twice(client, "/workflows", body)
    assert first == second
    assert rows("workflow_executions") == 1
    assert queued(queues.DEFAULT) + queued(queues.CPU_INTENSIVE) == 1  # validate, once
    changed = client.post("/workflows", json={**body, "input": {}}, headers=AUTH)
    assert changed.status_code == 422 and "different request" in changed.text


def test_the_same_key_twice_on_jobs_is_one_job(client: TestClient) -> None:
    """Two posts with one key: one job row, one chord, the same body; a workflow may not
    reuse a job's key."""
    name = f"f18-{uuid.uuid4().hex[:8]}"
    generate(name, 30, seed=2, replace=True)
    body = {"dataset": name, "function": "aggregation", "partitions": 3, "idempotency_key": "j"}
    first, second = post_twice(client, "/jobs", body)
    assert first == second
    assert rows("mapreduce_jobs") == 1
    assert queued(queues.CPU_INTENSIVE) == 3  # three maps, sent once
    reused = client.post(
        "/workflows", json={"workflow": "data_processing", "idempotency_key": "j"}, headers=AUTH
    )
    assert reused.status_code == 422 and "job" in reused.text


def test_keys_are_checked(client: TestClient) -> None:
    too_long = {"task": "add", "args": {"x": 1, "y": 1}, "idempotency_key": "k" * 201}
    assert client.post("/tasks", json=too_long, headers=AUTH).status_code == 422
