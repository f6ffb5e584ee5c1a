"""Integration tier: real Redis and Postgres, workers running in this process.

The services are the compose file's own ``redis`` and ``postgres`` (project
``celeryref-it``), started here when nothing answers on the integration ports.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

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

COMPOSE_PROJECT = "celeryref-it"


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


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_HOST_PORT": IT_REDIS_PORT, "POSTGRES_HOST_PORT": IT_POSTGRES_PORT}
    return subprocess.run(
        ["docker", "compose", "-p", COMPOSE_PROJECT, *args],
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
        up = _compose("up", "-d", "--wait", "redis", "postgres")
        if up.returncode != 0:
            missing(f"could not start redis/postgres with compose: {up.stderr[-2000:]}")
        started = True
        problem = _reachable()
    if problem is not None:
        missing(f"integration services unreachable ({problem}); run `make test`")

    from celeryref.migrate import migrate

    migrate()
    yield
    if started and not os.environ.get("KEEP_SERVICES"):
        _compose("down", "-v", "--remove-orphans")


@pytest.fixture
def clean_state(services: None) -> Iterator[None]:
    """Empty queues, results, app state and test tables before each test."""
    from celeryref import db, queues
    from celeryref.settings import settings

    broker = redis.Redis.from_url(settings.broker_url)
    # Delete the queues' lists, not the whole db: kombu's exchange bindings live there.
    keys = [k for q in queues.ALL_QUEUES for k in queues.redis_keys(q)]
    broker.delete(*keys, "unacked", "unacked_index", "unacked_mutex")
    for url in (settings.result_backend_url, settings.state_redis_url):
        redis.Redis.from_url(url).flushdb()
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "TRUNCATE user_sessions, beat_heartbeats, health_checks, reports RESTART IDENTITY"
        )
    yield


WorkerFactory = Callable[..., AbstractContextManager[Any]]


@pytest.fixture
def worker(clean_state: None) -> WorkerFactory:
    """``with worker("default"):`` runs a real worker consuming that queue in-process."""
    from celery.contrib.testing.worker import start_worker

    from celeryref.celery_app import app
    from celeryref.health import node_name

    @contextmanager
    def run(queue: str, pool: str = "solo", concurrency: int = 1) -> Iterator[Any]:
        with start_worker(
            app,
            pool=pool,
            concurrency=concurrency,
            queues=[queue],
            hostname=node_name(queue),
            perform_ping_check=False,
            shutdown_timeout=30,
        ) as w:
            yield w

    return run
