"""The fault suite's own deployment: ``docker-compose.yml`` + ``compose.faults.yml``.

``tests/stack/test_faults_*.py`` kill, stop and restart containers, so they run
against a stack of their own: compose project ``celeryref-faults`` on host ports
5xxxx (Redis 56379, Postgres 55432, Flower 55555, API 58000, mail sink 58025),
image ``celeryref/app:faults``, with the drills enabled (``FAULT_INJECTION=1``) and
shortened timeouts (:data:`FAULT_ENV`). It is brought up from nothing (``down -v``
first, ``up --build --wait``) once per pytest session and removed at the end,
unless ``KEEP_STACK=1``; ``REUSE_STACK=1`` skips the initial ``down -v``/build and
reuses a stack left running by ``KEEP_STACK=1`` (for iterating on one test).

Run (with the offline base images on an air-gapped machine)::

    set -a && . docker/offline/images.env && set +a
    .venv/bin/pytest tests/stack/test_faults_workers.py tests/stack/test_faults_infra.py \\
        tests/stack/test_faults_input.py

Import the ``faults`` fixture from here (``from tests.stack.faults_support import
faults``): the stack is started once however many modules import it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import psycopg2
import pytest
import redis
import requests
from celery import Celery
from celery.result import AsyncResult

from devtools.harness import ComposeError
from tests.conftest import DOTENV, ROOT, docker_compose_available, missing
from tests.stack.conftest import Stack, wait_for
from tests.support.compose import PYTHON_LONG_RUNNING

#: Compose project of the fault suite (never the developer's or the stack tier's).
PROJECT = "celeryref-faults"
#: The deployment plus the fault-suite override.
COMPOSE_FILES = ("docker-compose.yml", "tests/stack/compose.faults.yml")
#: Package of the drill tasks, outside the product (EXTRA_TASK_PACKAGES).
DRILL_PACKAGE = "devtools.tasks"
#: Drill tasks (devtools/tasks/default/drills.py) by short name.
DRILLS = f"{DRILL_PACKAGE}.default.drills"

#: Seconds before Redis hands an unacknowledged message to another consumer. F23 needs
#: it above TASK_TIME_LIMIT + 60 s, and above the longest built-in workflow step
#: (report: 120 s) + its 30 s hard-limit grace + 60 s, or every service refuses to start.
VISIBILITY_TIMEOUT = 220
#: Hard time limit of every task in the fault stack (below the visibility timeout).
TASK_TIME_LIMIT = 30
#: Soft time limit (below the hard one).
TASK_SOFT_TIME_LIMIT = 25
#: Seconds `docker compose stop` waits before SIGKILL (shortened: 90 s by default).
STOP_GRACE_SECONDS = 40
#: Soft-shutdown window of the workers (shortened: 60 s by default).
SOFT_SHUTDOWN_SECONDS = 8
#: Seconds between beat heartbeats (30 s by default).
BEAT_HEARTBEAT_SECONDS = 2
#: Seconds a beat lease lives without renewal (60 s by default).
BEAT_LOCK_TTL = 10
#: kombu sweeps for expired unacknowledged messages every 10 s but scans Redis only on
#: every 10th sweep (``unacked_restore_interval`` x ``unacked_restore_throttle``).
RESTORE_SWEEP_SECONDS = 100
#: Longest wait for a message stranded by a dead consumer to run again.
REDELIVERY_DEADLINE = VISIBILITY_TIMEOUT + RESTORE_SWEEP_SECONDS + 60

#: Variables docker-compose.yml interpolates, set for the fault stack.
FAULT_ENV = {
    "APP_IMAGE": "celeryref/app:faults",
    "REDIS_HOST_PORT": "56379",
    "POSTGRES_HOST_PORT": "55432",
    "FLOWER_HOST_PORT": "55555",
    "APP_HOST_PORT": "58000",
    "MAILSINK_HOST_PORT": "58025",
    # Each healthcheck starts a Python process (a worker's reads a file, the others
    # a bare HTTP GET or one Redis call): cheap, but not free on 8 containers.
    "HEALTHCHECK_INTERVAL": "10s",
    "BEAT_HEARTBEAT_SECONDS": str(BEAT_HEARTBEAT_SECONDS),
    "BEAT_LOCK_TTL": str(BEAT_LOCK_TTL),
    "TASK_SOFT_TIME_LIMIT": str(TASK_SOFT_TIME_LIMIT),
    "TASK_TIME_LIMIT": str(TASK_TIME_LIMIT),
    "BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    "WORKER_STOP_GRACE_PERIOD": f"{STOP_GRACE_SECONDS}s",
    "WORKER_SOFT_SHUTDOWN_TIMEOUT": str(SOFT_SHUTDOWN_SECONDS),
    # The drills (devtools/tasks/default/drills.py) are not product tasks: only
    # this stack's workers register them.
    "EXTRA_TASK_PACKAGES": DRILL_PACKAGE,
}

#: Long-running services of the deployment, with their usual scale.
SERVICES = ("redis", "postgres", *PYTHON_LONG_RUNNING, "mailsink")
#: Worker service of each queue.
WORKER_OF = {
    "default": "worker",
    "cpu_intensive": "worker-cpu",
    "io_intensive": "worker-io",
    "priority": "worker-priority",
    "scheduled": "worker-scheduled",
}


def new_key(prefix: str) -> str:
    """A fresh drill key (unique per call, readable in the tables)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class FaultStack(Stack):
    """Handle on the ``celeryref-faults`` project (see the module docstring)."""

    env: dict[str, str] = field(default_factory=lambda: {**os.environ, **FAULT_ENV})

    project: str = PROJECT
    files: tuple[str, ...] = COMPOSE_FILES
    wait_timeout: int = 300

    def running(self, service: str) -> list[dict[str, Any]]:
        """Running containers of ``service``."""
        return [r for r in self.containers(service) if r["State"] == "running"]

    def container_id(self, service: str) -> str:
        """The id of ``service``'s single running container."""
        rows = self.running(service)
        assert len(rows) == 1, f"expected one running {service}, got {rows}"
        return str(rows[0]["ID"])

    def ensure_up(self) -> None:
        """Every service running at its usual scale (after a destructive test).

        A worker just started by :meth:`start_worker` answered a ping already; its
        Docker health may still say "starting" (first check after HEALTHCHECK_INTERVAL).
        """
        for service in ("redis", "postgres"):
            if self.running(service):
                self.wait_healthy(service)
        rows = [r for r in self.containers() if r["Service"] in SERVICES]
        per_service: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            per_service.setdefault(row["Service"], []).append(row)
        running = all(
            len(per_service.get(s, [])) == 1 and per_service[s][0]["State"] == "running"
            for s in SERVICES
        )
        if not running:
            scale = [f"--scale={s}=1" for s in SERVICES if s not in ("redis", "postgres")]
            self.up(*scale, *SERVICES)
            return
        # Running but unhealthy: a worker whose checks failed while Redis or Postgres
        # was down recovers by itself (that is part of what is proven); wait for it.
        for service in SERVICES:
            if per_service[service][0].get("Health", "") == "unhealthy":
                self.wait_healthy(service, timeout=180)

    def wait_healthy(self, service: str, timeout: float = 120) -> None:
        """Block until ``service``'s single container reports healthy (after a pause)."""
        container = self.container_id(service)

        def healthy() -> bool:
            status = self.docker("inspect", "-f", "{{.State.Health.Status}}", container)
            return status.strip() == "healthy"

        wait_for(healthy, timeout, f"{service} to be healthy again", every=1)

    def start_worker(self, service: str, timeout: float = 120) -> str:
        """Start ``service`` (one container, no dependencies) and wait until its Celery node
        answers a ping: quicker than Docker's first healthcheck. Returns the container id."""
        self.compose("up", "-d", "--no-deps", service)
        container = self.container_id(service)

        def answers() -> bool:
            replies = self.app.control.ping(timeout=1) or []
            return any(container.startswith(n.split("@")[-1]) for r in replies for n in r)

        wait_for(answers, timeout, f"the {service} node to answer a ping", every=1)
        return container

    def logs(self, service: str, tail: int = 200) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), service, check=False)

    def run_once(
        self, service: str, *command: str, env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose run --rm --no-deps`` a one-off container of ``service``."""
        flags = [f"--env={k}={v}" for k, v in env.items()]
        return self.run(
            self.compose_command("run", "--rm", "--no-deps", *flags, service, *command), 300
        )

    @contextmanager
    def default_worker_replaced_by(self, service: str) -> Iterator[str]:
        """Serve ``default`` with ``service`` (a profile service) instead of ``worker``."""
        self.compose("stop", "worker")
        try:
            self.start_worker(service)
            yield service
        finally:
            self.compose("rm", "--stop", "--force", service, check=False)
            self.start_worker("worker")

    def container_of(self, node: str) -> str:
        """The id of the container whose Celery node is ``node`` (``queue@<hostname>``)."""
        host = node.split("@")[-1]
        ids = [str(r["ID"]) for r in self.containers() if host.startswith(r["ID"][:12])]
        assert len(ids) == 1, f"no single container for node {node}: {ids}"
        return ids[0]

    # -- clients -------------------------------------------------------------------

    def settings_env(self) -> dict[str, str]:
        return {
            **super().settings_env(),
            "EXTRA_TASK_PACKAGES": FAULT_ENV["EXTRA_TASK_PACKAGES"],
            "TASK_SOFT_TIME_LIMIT": str(TASK_SOFT_TIME_LIMIT),
            "TASK_TIME_LIMIT": str(TASK_TIME_LIMIT),
            "BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        }

    @cached_property
    def app(self) -> Celery:
        """One client app for the whole session (connection pools are reused)."""
        return self.celery()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{FAULT_ENV['APP_HOST_PORT']}"

    @property
    def api_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {DOTENV['API_TOKEN']}"}

    def api(self, method: str, path: str, timeout: float = 30, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.api_url}{path}", timeout=timeout, **kwargs)

    def redis(self, db: int = 0) -> redis.Redis:
        """A client for database ``db`` of the stack's Redis (0 broker, 1 results, 2 state)."""
        return redis.Redis(
            host="127.0.0.1",
            port=int(FAULT_ENV["REDIS_HOST_PORT"]),
            password=DOTENV["REDIS_PASSWORD"],
            db=db,
            socket_timeout=10,
        )

    @property
    def dsn(self) -> str:
        env = self.settings_env()
        return (
            f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@127.0.0.1:"
            f"{env['POSTGRES_PORT']}/{env['POSTGRES_DB']}"
        )

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in its own connection (Postgres may have restarted since)."""
        conn = psycopg2.connect(self.dsn, connect_timeout=10)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    # -- drills --------------------------------------------------------------------

    def send(
        self,
        drill: str,
        *args: Any,
        queue: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send drill ``drill`` (a function of devtools.tasks.default.drills) with ``args``."""
        kwargs = options.pop("kwargs", None)
        return self.app.send_task(
            f"{DRILLS}.{drill}", args=list(args), kwargs=kwargs, queue=queue, **options
        )

    def runs(self, key: str) -> list[tuple[str, str, int]]:
        """(task_id, worker, pid) of every execution of drill ``key``, in order."""
        rows = self.sql(
            "SELECT task_id, worker, pid FROM drill_runs WHERE key = %s ORDER BY id", (key,)
        )
        return [(str(t), str(w), int(p)) for t, w, p in rows]

    def effects(self, key: str) -> list[tuple[str, str]]:
        """(task_id, worker) of every side effect of drill ``key``, in order."""
        rows = self.sql(
            "SELECT task_id, worker FROM drill_effects WHERE key = %s ORDER BY id", (key,)
        )
        return [(str(t), str(w)) for t, w in rows]

    def wait_for_run(
        self, key: str, count: int = 1, timeout: float = 60
    ) -> list[tuple[str, str, int]]:
        """Block until drill ``key`` has started ``count`` times; return the runs."""
        return wait_for(
            lambda: r if len(r := self.runs(key)) >= count else None,
            timeout,
            f"{count} run(s) of drill {key}",
            every=0.2,
        )

    def unacked_task_ids(self) -> set[str]:
        """Task ids of messages delivered to a consumer and not acknowledged yet."""
        ids = set()
        for raw in self.redis(0).hvals("unacked"):
            message = json.loads(raw)[0]
            ids.add(str(message.get("headers", {}).get("id")))
        return ids

    def queued_task_ids(self, queue: str) -> set[str]:
        """Task ids waiting in ``queue`` (every priority step)."""
        from celeryref.queues import redis_keys

        client = self.redis(0)
        ids = set()
        for key in redis_keys(queue):
            for raw in client.lrange(key, 0, -1):
                ids.add(str(json.loads(raw).get("headers", {}).get("id")))
        return ids

    def dead_letters(self, task_id: str) -> list[dict[str, Any]]:
        rows = self.sql(
            "SELECT id, task_name, category, exception_type, exception, retries"
            " FROM dead_letters WHERE task_id = %s ORDER BY id",
            (task_id,),
        )
        keys = ("id", "task_name", "category", "exception_type", "exception", "retries")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def state(self, task_id: str) -> str:
        return str(AsyncResult(task_id, app=self.app).state)


def publish(
    stack: FaultStack, prefix: str, count: int, queues: list[str], hold: float
) -> list[str]:
    """Send ``count`` record_event drills (keys ``prefix-0..``) round-robin over ``queues``."""
    ids = []
    with stack.app.producer_or_acquire() as producer:
        for i in range(count):
            result = stack.app.send_task(
                f"{DRILLS}.record_event",
                args=[f"{prefix}-{i}", hold],
                queue=queues[i % len(queues)],
                producer=producer,
            )
            ids.append(str(result.id))
    return ids


def effect_counts(stack: FaultStack, prefix: str) -> tuple[int, int]:
    """(distinct keys with an effect, effect rows) of the drills under ``prefix``."""
    ((keys, rows),) = stack.sql(
        "SELECT count(DISTINCT key), count(*) FROM drill_effects WHERE key LIKE %s",
        (f"{prefix}-%",),
    )
    return int(keys), int(rows)


def run_count(stack: FaultStack, prefix: str) -> int:
    ((rows,),) = stack.sql("SELECT count(*) FROM drill_runs WHERE key LIKE %s", (f"{prefix}-%",))
    return int(rows)


def wait_until_drained(
    stack: FaultStack, ids: list[str], queues: list[str], timeout: float
) -> None:
    """Block until none of ``ids`` is queued or awaiting a redelivery."""
    wanted = set(ids)

    def drained() -> bool:
        try:
            pending = stack.unacked_task_ids()
            for queue in queues:
                pending |= stack.queued_task_ids(queue)
        except redis.RedisError:  # Redis restarting under the probe: not drained yet
            return False
        return not pending & wanted

    wait_for(drained, timeout, "no message of the test left in Redis", every=2)


def timed(action: Callable[[], Any]) -> float:
    """Seconds ``action`` took."""
    started = time.monotonic()
    action()
    return time.monotonic() - started


#: Where measured (never asserted) recovery times are written for docs/RELIABILITY.md.
MEASUREMENTS = ROOT / "build" / "faults-measurements.json"


def record_measurement(name: str, value: Any) -> None:
    """Keep one measurement (seconds, counts) of this run in :data:`MEASUREMENTS`."""
    MEASUREMENTS.parent.mkdir(exist_ok=True)
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[name] = round(value, 2) if isinstance(value, float) else value
    MEASUREMENTS.write_text(json.dumps(data, indent=2, sort_keys=True))


_stack: FaultStack | None = None


def _start(config: pytest.Config) -> FaultStack:
    global _stack
    if _stack is not None:
        return _stack
    if not docker_compose_available():
        missing(
            "no Docker engine with the compose plugin; run scripts/ensure-docker.sh, "
            "then the fault suite"
        )
    stack = FaultStack()
    started = time.monotonic()
    if not os.environ.get("REUSE_STACK"):
        stack.down(profiles=["*"])
        stack.compose("build")
    try:
        stack.up()
    except ComposeError:
        print(stack.compose("logs", "--no-color", "--tail", "80", check=False))  # noqa: T201
        raise
    stack.startup_seconds = time.monotonic() - started
    if not os.environ.get("KEEP_STACK"):

        def remove() -> None:
            stack.down(profiles=["*"], check=False)

        config.add_cleanup(remove)
    _stack = stack
    return stack


def ready_stack(config: pytest.Config) -> FaultStack:
    """The fault stack (started once), every service up and healthy, with a fresh client."""
    stack = _start(config)
    stack.ensure_up()
    # A fresh client each time: a client that saw Redis go away keeps a broken result
    # consumer ("the Celery application must be restarted").
    stack.__dict__.pop("app", None)
    return stack


@pytest.fixture
def faults(request: pytest.FixtureRequest) -> Iterator[FaultStack]:
    """The fault stack, every service up and healthy before the test (started once)."""
    yield ready_stack(request.config)
