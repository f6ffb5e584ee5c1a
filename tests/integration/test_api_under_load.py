"""Issue 17 item 3 and 5: the API holds under concurrent load and keeps its reads closed.

The concurrency tests run the real ASGI app in uvicorn (in a thread, on a free port,
with its ``API_THREADS`` request threads) against the tier's Redis and Postgres, and send
requests from many client threads at once, as the flood that wedged it did.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
import pytest
import redis
import requests
import uvicorn
from fastapi.testclient import TestClient

from celeryref import queues
from celeryref.adapters import db
from celeryref.api.main import api
from celeryref.api.routes import monitoring
from celeryref.observability.health import node_name
from celeryref.settings import settings
from tests.conftest import wait_for
from tests.integration.conftest import await_ping
from tests.support.api import PROTECTED_READS

AUTH = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
#: Seconds within which every request of a flood must have been answered.
FLOOD_DEADLINE = 60


@pytest.fixture
def served(clean_state: None) -> Iterator[str]:
    """Base URL of :data:`api` served by uvicorn in a thread of this process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(api, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def flood(count: int, call: Callable[[int], requests.Response]) -> list[requests.Response]:
    """``call(i)`` for ``i < count`` from ``count`` threads at once; every answer, or fail
    the test once :data:`FLOOD_DEADLINE` has passed without one."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(call, i) for i in range(count)]
        return [f.result(timeout=FLOOD_DEADLINE) for f in futures]


def test_a_flood_of_worker_listings_all_answer(served: str, worker: Any) -> None:
    """80 concurrent ``GET /workers`` (8x the broker pool, 5x the request threads) all
    answer 200 with the running worker, and the API serves normally afterwards (before:
    every request thread waited forever in kombu's pool, and so did every request)."""
    with worker(queues.PRIORITY):
        await_ping(node_name(queues.PRIORITY), "it never answered a ping")
        started = time.monotonic()
        answers = flood(80, lambda _: requests.get(f"{served}/workers", headers=AUTH, timeout=50))
        took = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 80, {a.status_code for a in answers}
    assert all(
        node_name(queues.PRIORITY) in [w["name"] for w in a.json()["workers"]] for a in answers
    )
    assert took < 30, f"80 worker listings took {took:.1f}s"
    assert requests.get(f"{served}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{served}/queues", headers=AUTH, timeout=5).status_code == 200


def test_a_revoke_needs_one_pooled_connection_not_two(served: str) -> None:
    """With all but one of the broker pool's connections in use, ``DELETE /tasks/{id}``
    (a broadcast) still answers 202 (before: the broadcast held the last connection and
    waited forever for a producer needing another one, so ``broker_pool_limit``
    concurrent revokes wedged the API)."""
    from celeryref.celery_app import app

    body = {"task": "add", "args": {"x": 1, "y": 2}}
    task_id = requests.post(f"{served}/tasks", json=body, headers=AUTH, timeout=10).json()[
        "task_id"
    ]
    answers: list[requests.Response] = []

    def revoke() -> None:
        answers.append(requests.delete(f"{served}/tasks/{task_id}", headers=AUTH, timeout=50))

    limit = app.conf.broker_pool_limit
    held = [app.pool.acquire(block=True, timeout=10) for _ in range(limit - 1)]
    try:
        thread = threading.Thread(target=revoke, daemon=True)
        thread.start()
        thread.join(15)
        assert answers, "the revoke waited for a second pooled connection"
    finally:
        for connection in held:
            connection.release()
    assert answers[0].status_code == 202, answers[0].text


@pytest.fixture
def small_pool(services: None) -> Iterator[db.WaitingPool]:
    """This process's Postgres pool with 4 connections (the API had ``DB_POOL_MAX=4``
    behind 40 request threads) and the default wait; the settings' pool afterwards."""
    db.close_pool()
    pool = db.open_pool(1, 4)
    yield pool
    db.close_pool()


def test_returned_connections_are_kept_for_the_next_borrowers(small_pool: db.WaitingPool) -> None:
    """4 threads borrow at once, return, borrow again: the same 4 server sessions (before:
    psycopg2 kept ``minconn`` = 1 and closed the others, so nearly every borrow under load
    opened a new connection inside the pool's lock)."""

    def sessions() -> set[int]:
        barrier = threading.Barrier(4)

        def borrow(_: int) -> int:
            with db.connection() as conn:
                barrier.wait(timeout=30)  # all four held at once
                return int(conn.get_backend_pid())

        with ThreadPoolExecutor(4) as pool:
            return set(pool.map(borrow, range(4), timeout=FLOOD_DEADLINE))

    first = sessions()
    assert len(first) == 4
    assert sessions() == first


def test_more_readers_than_connections_wait_their_turn(
    served: str, small_pool: db.WaitingPool
) -> None:
    """256 ``GET /dead-letters``, 64 at a time, through 4 connections: all 200 (before:
    most were 500, psycopg2's pool raised PoolError when it had none free)."""
    with ThreadPoolExecutor(64) as pool:
        answers = list(
            pool.map(
                lambda _: requests.get(f"{served}/dead-letters", headers=AUTH, timeout=50),
                range(256),
                timeout=FLOOD_DEADLINE,
            )
        )
    assert {a.status_code for a in answers} == {200}


def test_a_pool_that_stays_full_is_503_with_retry_after(
    served: str, small_pool: db.WaitingPool
) -> None:
    """Every connection held longer than the pool's wait: 503 + ``Retry-After``, never 500
    (before: 500 at once)."""
    with contextlib.ExitStack() as held:
        for _ in range(4):
            held.enter_context(db.connection())
        answer = requests.get(f"{served}/dead-letters", headers=AUTH, timeout=30)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert "busy" in answer.json()["detail"]
    assert requests.get(f"{served}/dead-letters", headers=AUTH, timeout=30).status_code == 200


@pytest.fixture
def client(clean_state: None) -> Iterator[TestClient]:
    with TestClient(api) as c:
        yield c


@pytest.mark.parametrize(
    "path",
    PROTECTED_READS,
)
def test_reads_need_the_token(client: TestClient, path: str) -> None:
    """Results, executions, jobs, workers, queues and metrics: 401 without the token or
    with a wrong one (before: open to anyone who reached the port)."""
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers=AUTH).status_code != 401


def test_health_and_readiness_say_only_whether(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Open without a token; when Redis and Postgres fail, ``/readyz`` is 503 naming the
    failed checks, never the drivers' messages (hosts, users) it used to echo."""
    secrets = 'db.internal (10.0.0.5) user "celeryref"'

    class Down(redis.Redis):
        def ping(self, **kwargs: Any) -> Any:
            raise redis.ConnectionError(f"Error 111 connecting to {secrets}")

    def no_database() -> Any:
        raise psycopg2.OperationalError(f"connection to server at {secrets} failed")

    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "ready": True,
        "checks": {"redis": "ok", "postgres": "ok"},
    }
    monkeypatch.setattr(monitoring.monitoring, "broker_client", lambda: Down())
    monkeypatch.setattr(monitoring.db, "connection", no_database)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "ready": False,
        "checks": {"redis": "unavailable", "postgres": "unavailable"},
    }
    assert client.get("/healthz").status_code == 200
