"""The HTTP API against real Redis, Postgres and workers (in-process ASGI client).

Over-the-network behaviour and the OpenAPI fuzzing run in the stack tier.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from celeryref import queues
from celeryref.api.main import api
from celeryref.observability.health import node_name
from celeryref.settings import settings
from celeryref.submission import catalog
from tests.conftest import wait_for
from tests.integration.conftest import await_ping
from tests.support import tasks as support

AUTH = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}


@pytest.fixture
def client(clean_state: None) -> Iterator[TestClient]:
    with TestClient(api) as c:
        yield c


def poll(client: TestClient, task_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/tasks/{task_id}", headers=AUTH).json()
        if body["state"] in ("SUCCESS", "FAILURE", "REVOKED", "REJECTED"):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"task {task_id} still {body['state']} after {timeout}s")
        time.sleep(0.05)


def test_mutating_endpoints_need_the_token(client: TestClient) -> None:
    body = {"task": "add", "args": {"x": 1, "y": 2}}
    assert client.post("/tasks", json=body).status_code == 401
    wrong = client.post("/tasks", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.get("/dead-letters").status_code == 401
    # Reads need it too (every one: tests/integration/test_api_under_load.py).
    assert client.get("/queues").status_code == 401
    assert client.get("/healthz").status_code == 200  # health stays open


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"task": "rm -rf"}, "unknown task 'rm -rf'; submittable tasks: ["),
        ({"task": "add", "args": {"x": "one", "y": 2}}, "x: Input should be a valid number"),
        ({"task": "add", "args": {"x": 1}}, "y: Field required"),
        ({"task": "add", "args": {"x": 1, "y": 2, "z": 3}}, "z: Extra inputs are not permitted"),
        ({"task": "summarize", "args": {"numbers": []}}, "numbers: List should have at least 1"),
        ({"task": "long_task", "args": {"n": 10**9}}, "n: Input should be less than or equal"),
        ({"task": "fetch_url", "args": {"url": "file:///etc/passwd"}}, "url: String should match"),
        ({"task": "add", "args": {"x": 1, "y": 2}, "priority": 10}, "less than or equal to 9"),
        ({"task": "add", "args": [1, 2]}, "valid dictionary"),
        ({"task": "add", "args": {}, "unexpected": 1}, "Extra inputs are not permitted"),
        ({"task": "add", "args": {"x": 1, "y": 2}, "idempotency_key": ""}, "at least 1 character"),
    ],
)
def test_bad_submissions_get_422_saying_what_is_wrong(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    response = client.post("/tasks", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert message in response.text


def test_malformed_json_is_a_422(client: TestClient) -> None:
    response = client.post(
        "/tasks",
        content=b'{"task": "add", "args": {',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422 and "JSON" in response.text


def test_oversized_bodies_are_refused_with_413(client: TestClient) -> None:
    """Declared too large, or streamed without a length: 413 either way, nothing queued."""
    big = {"task": "summarize", "args": {"numbers": [1.0] * 20_000}}
    assert client.post("/tasks", json=big, headers=AUTH).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"task": "summarize", "args": {"numbers": ['
        for _ in range(settings.api_max_body_bytes // 1000 + 1):
            yield b"1.0," * 250
        yield b"1.0]}}"

    streamed = client.post(
        "/tasks", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert client.get("/queues", headers=AUTH).json()["queues"][queues.DEFAULT] == 0


def test_submit_poll_result(client: TestClient, worker: Any) -> None:
    """202 with a status URL; polling shows the result and the worker that ran it."""
    response = client.post("/tasks", json={"task": "add", "args": {"x": 2, "y": 40}}, headers=AUTH)
    assert response.status_code == 202
    accepted = response.json()
    assert response.headers["Location"] == accepted["status_url"]
    assert client.get(f"/tasks/{accepted['task_id']}", headers=AUTH).json()["state"] == "PENDING"
    with worker(queues.DEFAULT):
        done = poll(client, accepted["task_id"])
    assert done["result"] == 42 and done["task"] == "add" and done["error"] is None
    succeeded = (
        'celeryref_task_outcomes_total{outcome="succeeded",task="celeryref.tasks.default.add"}'
    )
    assert succeeded in client.get("/metrics", headers=AUTH).text


def test_progress_is_visible_while_a_long_task_runs(client: TestClient, worker: Any) -> None:
    task_id = client.post(
        "/tasks", json={"task": "long_task", "args": {"n": 20, "work": 200_000}}, headers=AUTH
    ).json()["task_id"]
    seen = []
    with worker(queues.CPU_INTENSIVE):
        deadline = time.monotonic() + 30
        while (body := client.get(f"/tasks/{task_id}", headers=AUTH).json())["state"] != "SUCCESS":
            if body["progress"]:
                seen.append(body["progress"]["current"])
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert seen and seen == sorted(seen) and all(1 <= c <= 20 for c in seen)


def test_failures_show_the_error(client: TestClient, worker: Any) -> None:
    task_id = client.post(
        "/tasks",
        json={"task": "db_operation", "args": {"operation": "drop_everything"}},
        headers=AUTH,
    ).json()["task_id"]
    with worker(queues.DEFAULT):
        done = poll(client, task_id)
    assert done["state"] == "FAILURE"
    assert done["error"]["type"] == "InvalidArguments"
    assert "unknown database operation" in done["error"]["message"]


def test_unknown_and_malformed_task_ids(client: TestClient) -> None:
    assert (
        client.get("/tasks/0f8fad5b-d9cb-469f-a165-70867728950e", headers=AUTH).status_code == 404
    )
    assert client.get("/tasks/not%20an%20id", headers=AUTH).status_code == 422
    assert client.delete("/tasks/nope", headers=AUTH).status_code == 404


def test_revoked_task_never_runs(client: TestClient, worker: Any) -> None:
    """A task queued behind a busy worker and revoked is skipped when its turn comes.

    (Revokes live in the memory of the workers running at that moment.) The threads
    pool keeps the consumer free while ``busy`` runs, so the revoke is received and
    confirmed before the queued task can be fetched (prefetch 1 + acks_late).
    """
    from celeryref.celery_app import app

    with worker(queues.DEFAULT, pool="threads", concurrency=1) as w:
        busy = support.side_effect.delay("busy", hold_seconds=5.0)
        task_id = client.post(
            "/tasks", json={"task": "add", "args": {"x": 1, "y": 1}}, headers=AUTH
        ).json()["task_id"]
        assert client.delete(f"/tasks/{task_id}", headers=AUTH).json()["revoked"] is True

        def worker_knows() -> bool:
            replies = app.control.inspect(destination=[w.hostname], timeout=1).revoked() or {}
            return any(task_id in ids for ids in replies.values())

        wait_for(worker_knows, 30, "the worker to hold the revoke")
        assert not busy.ready(), "busy finished before the revoke arrived: test proves nothing"
        busy.get(timeout=30)
        assert poll(client, task_id)["state"] == "REVOKED"


def test_dead_letter_endpoints(client: TestClient, worker: Any) -> None:
    """List, show, replay once (409 the second time), purge, then 404."""
    task_id = client.post(
        "/tasks", json={"task": "summarize", "args": {"numbers": [1, 2]}}, headers=AUTH
    ).json()["task_id"]
    with worker(queues.DEFAULT, queues.PRIORITY):
        poll(client, task_id)
        bad = client.post(
            "/tasks", json={"task": "db_operation", "args": {"operation": "nope"}}, headers=AUTH
        ).json()["task_id"]
        poll(client, bad)
        (entry,) = client.get("/dead-letters", headers=AUTH).json()
        assert entry["task_id"] == bad and entry["category"] == "invalid_arguments"
        detail = client.get(f"/dead-letters/{entry['id']}", headers=AUTH).json()
        assert detail["kwargs"] == {"operation": "nope", "params": {}}
        assert "Traceback" in detail["traceback"]
        replay = client.post(f"/dead-letters/{entry['id']}/replay", headers=AUTH)
        assert replay.status_code == 202
        assert poll(client, replay.json()["task_id"])["state"] == "FAILURE"
        again = client.post(f"/dead-letters/{entry['id']}/replay", headers=AUTH)
        assert again.status_code == 409 and "already replayed" in again.text
    assert client.delete(f"/dead-letters/{entry['id']}", headers=AUTH).json() == {"purged": 1}
    assert client.get(f"/dead-letters/{entry['id']}", headers=AUTH).status_code == 404
    assert client.get("/dead-letters/0", headers=AUTH).status_code == 422


def test_scaling_signals_and_health(client: TestClient, worker: Any) -> None:
    for _ in range(3):
        client.post("/tasks", json={"task": "long_task", "args": {"n": 1}}, headers=AUTH)
    assert client.get("/queues", headers=AUTH).json()["queues"][queues.CPU_INTENSIVE] == 3
    with worker(queues.PRIORITY):
        await_ping(node_name(queues.PRIORITY), "it never answered a ping")
        # /workers serves a snapshot up to 10 s old: wait for one that has the new worker.
        (info,) = wait_for(
            lambda: [
                w
                for w in client.get("/workers", headers=AUTH).json()["workers"]
                if "priority" in w["queues"]
            ],
            30,
            "a worker snapshot with the priority worker",
        )
    assert info["name"].startswith("priority@")
    assert client.get("/readyz").json() == {
        "ready": True,
        "checks": {"redis": "ok", "postgres": "ok"},
    }


def test_catalog_lists_every_submittable_task(client: TestClient) -> None:
    listed = {e["name"]: e for e in client.get("/catalog").json()}
    assert set(listed) == set(catalog.CATALOG)
    assert listed["add"]["args_schema"]["required"] == ["x", "y"]
