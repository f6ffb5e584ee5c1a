"""Integration tier: real Redis and Postgres, workers running in this process.

The services are the compose file's own ``redis`` and ``postgres`` (project
``celeryref-it``), started here when nothing answers on the integration ports.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

import psycopg2
import pytest
import redis

from tests.conftest import (
    IT_POSTGRES_PORT,
    IT_REDIS_PORT,
    ROOT,
    docker_compose_available,
    missing,
)
from tests.support import tasks as support_tasks

COMPOSE_PROJECT = os.environ.get("IT_COMPOSE_PROJECT", "celeryref-it")


def _reachable() -> str | None:
    """``None`` when Redis and Postgres answer, else what is wrong."""
    from celeryref.settings import settings

    try:
        redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis at 127.0.0.1:{IT_REDIS_PORT}: {exc}"
    try:
        psycopg2.connect(settings.database_dsn, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        return f"Postgres at 127.0.0.1:{IT_POSTGRES_PORT}: {exc}".strip()
    return None


def compose(
    *args: str, project: str = COMPOSE_PROJECT, redis_port: str = IT_REDIS_PORT
) -> subprocess.CompletedProcess[str]:
    """``docker compose`` on this tier's services (or on another ``project``'s)."""
    env = {**os.environ, "REDIS_HOST_PORT": redis_port, "POSTGRES_HOST_PORT": IT_POSTGRES_PORT}
    return subprocess.run(
        ["docker", "compose", "-p", project, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def services() -> Iterator[None]:
    """Redis and Postgres for this tier, with the schema applied."""
    started = False
    problem = _reachable()
    if problem is not None and docker_compose_available():
        up = compose("up", "-d", "--wait", "redis", "postgres")
        if up.returncode != 0:
            missing(f"could not start redis/postgres with compose: {up.stderr[-2000:]}")
        started = True
        problem = _reachable()
    if problem is not None:
        missing(f"integration services unreachable ({problem}); run `make test`")

    from celeryref.adapters.migrate import migrate
    from celeryref.settings import settings

    # A fresh schema every session: services kept from an earlier run (or by
    # KEEP_SERVICES) may hold tables of an older version of a migration.
    with psycopg2.connect(settings.database_dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate()
    yield
    _release_result_subscriptions()
    if started and not os.environ.get("KEEP_SERVICES"):
        compose("down", "-v", "--remove-orphans")


def _release_result_subscriptions() -> None:
    """Close the client's result pub/sub before the tier's Redis goes away.

    AsyncResult objects the garbage collector finds at interpreter exit unsubscribe
    in ``__del__``; with Redis stopped each printed a "Retry limit exceeded"
    traceback after the summary. With no pub/sub, Celery's ``cancel_for`` skips it.
    Every consumer, not only ``app.backend``'s: the backend is per thread, and tests
    build apps of their own.
    """
    import gc

    from celery.backends.redis import ResultConsumer

    for consumer in [o for o in gc.get_objects() if isinstance(o, ResultConsumer)]:
        consumer.stop()
        consumer._pubsub = None


@pytest.fixture
def clean_state(services: None) -> Iterator[None]:
    """Empty queues, results, app state and test tables before each test."""
    from celeryref import queues
    from celeryref.adapters import db
    from celeryref.observability import task_stats
    from celeryref.settings import settings

    # An earlier test's task metrics still in this process go out now, before the wipe.
    task_stats.flush()
    broker = redis.Redis.from_url(settings.broker_url)
    # Delete the queues' lists, not the whole db: kombu's exchange bindings live there.
    keys = [k for q in queues.ALL_QUEUES for k in queues.redis_keys(q)]
    broker.delete(*keys, "unacked", "unacked_index", "unacked_mutex")
    for url in (settings.result_backend_url, settings.state_redis_url):
        redis.Redis.from_url(url).flushdb()
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "TRUNCATE user_sessions, beat_heartbeats, health_checks, reports,"
            " idempotency_keys, dead_letters RESTART IDENTITY"
        )
    support_tasks.create_tables()
    support_tasks.truncate_tables()
    yield


WorkerFactory = Callable[..., AbstractContextManager[Any]]


#: A Redis of its own for the tests that stop one: stopping the tier's Redis would break
#: the connections the app's pools keep for the tests that follow.
SPARE_PROJECT = f"{COMPOSE_PROJECT}-spare"
SPARE_REDIS_PORT = str(int(IT_REDIS_PORT) + 1)


def spare(*args: str) -> subprocess.CompletedProcess[str]:
    """``docker compose`` on the spare Redis's project."""
    return compose(*args, project=SPARE_PROJECT, redis_port=SPARE_REDIS_PORT)


def on_spare(url: str) -> str:
    """``url`` (one of the tier's Redis URLs) pointed at the spare Redis instead."""
    moved = url.replace(f":{IT_REDIS_PORT}/", f":{SPARE_REDIS_PORT}/")
    assert moved != url, url
    return moved


@pytest.fixture
def spare_redis(clean_state: None) -> Iterator[tuple[str, redis.Redis]]:
    """A second Redis (the deployment's service, another compose project): its broker URL
    and a client; removed afterwards."""
    from celeryref.settings import settings

    if not docker_compose_available():
        missing("docker compose is needed to start a spare Redis")
    up = spare("up", "-d", "--wait", "redis")
    assert up.returncode == 0, up.stderr
    url = on_spare(settings.broker_url)
    try:
        yield url, redis.Redis.from_url(url)
    finally:
        spare("down", "-v")


def await_ping(
    node: str, problem: str, alive: Callable[[], bool] = lambda: True, seconds: float = 60
) -> None:
    """Return once worker ``node`` answers a broadcast ping; fail the test with ``problem``
    if it dies (``alive`` turns false) or stays silent for ``seconds``.

    Needed before any broadcast a test counts on: a worker is "ready" before it has
    subscribed to the broadcast channel, and a broadcast sent earlier is lost. (A solo
    worker busy with a task answers only when the task is done.)"""
    from celeryref.celery_app import app

    deadline = time.monotonic() + seconds
    while not app.control.inspect(destination=[node], timeout=1).ping():
        if not alive() or time.monotonic() > deadline:
            pytest.fail(f"worker {node}: {problem}")


@pytest.fixture
def worker(clean_state: None) -> WorkerFactory:
    """``with worker("default"):`` runs a real worker consuming that queue in-process."""
    from celery.contrib.testing.worker import start_worker

    from celeryref.celery_app import app
    from celeryref.observability.health import node_name

    @contextmanager
    def run(queue: str, *more: str, pool: str = "solo", concurrency: int = 1) -> Iterator[Any]:
        with start_worker(
            app,
            pool=pool,
            concurrency=concurrency,
            queues=[queue, *more],
            hostname=node_name(queue),
            perform_ping_check=False,
            shutdown_timeout=30,
        ) as w:
            yield w

    return run


@pytest.fixture
def worker_process(clean_state: None) -> Iterator[Callable[..., str]]:
    """``worker_process("default", name="a")`` starts a real ``celery worker`` process.

    Returns the node name once the worker answers a ping; every process started is
    stopped (warm shutdown, then killed after 30 s) at the end of the test.
    """
    started: list[subprocess.Popen[bytes]] = []
    logs = ROOT / "build" / "test-workers"
    logs.mkdir(parents=True, exist_ok=True)

    def start(
        *queues: str,
        name: str = "proc",
        concurrency: int = 1,
        pool: str = "prefork",
        env: dict[str, str] | None = None,
    ) -> str:
        node = f"{name}@{socket.gethostname()}"
        log = (logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celeryref.celery_app",
                "worker",
                "-Q",
                ",".join(queues),
                "-n",
                node,
                "-P",
                pool,
                "-c",
                str(concurrency),
                "-I",
                "tests.support.tasks",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        await_ping(node, f"it did not start; see {log.name}", alive=lambda: proc.poll() is None)
        return node

    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """A local HTTP upstream: 503 for the first ``failures[path]`` hits, 404 under
    ``/missing``, else 200; records hit times and POSTed JSON bodies."""

    failures: ClassVar[dict[str, int]] = {}
    hits: ClassVar[dict[str, list[float]]] = {}
    posted: ClassVar[list[Any]] = []

    def _answer(self) -> None:
        times = self.hits.setdefault(self.path, [])
        times.append(time.monotonic())
        if self.path.startswith("/missing"):
            self.send_response(404)
        elif len(times) <= self.failures.get(self.path, 0):
            self.send_response(503)
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.posted.append(json.loads(self.rfile.read(length) or b"null"))
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """Base URL of a fresh :class:`RecordingHandler` server on 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    RecordingHandler.failures, RecordingHandler.hits, RecordingHandler.posted = {}, {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
