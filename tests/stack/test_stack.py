"""The deployment as users run it. Tests run in file order; the restart test is last."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg2
import pytest
import redis
import requests
from celery.result import AsyncResult

from celeryref import queues
from celeryref.app.single_beat import LOCK_KEY
from celeryref.observability.queue_depth import queue_depths
from tests.stack.conftest import PYTHON_LONG_RUNNING, STACK_ENV, Stack, holds_beat_lock, wait_for

TASKS = f"{queues.TASK_PACKAGE}"
#: How each row of the demo's pattern table begins (celeryref/client/patterns.py).
PATTERN_ROWS = (
    "chain ",
    "group ",
    "chord: ",
    "chunks: ",
    "map: ",
    "starmap: ",
    "map-reduce chord ",
    "workflow data_processing ",
    "map-reduce job, ",
)


def test_stack_comes_up_healthy_from_nothing(stack: Stack) -> None:
    """After `down -v` and `up --wait`, every service is healthy and migrate exited 0."""
    rows = {r["Service"]: r for r in stack.containers()}
    for service in [*PYTHON_LONG_RUNNING, "redis", "postgres"]:
        assert rows[service]["State"] == "running", rows[service]
        assert rows[service]["Health"] == "healthy", rows[service]
    assert rows["migrate"]["State"] == "exited" and rows["migrate"]["ExitCode"] == 0


@pytest.mark.parametrize(
    ("task", "args", "service", "queue"),
    [
        ("default.add", [2, 3], "worker", queues.DEFAULT),
        ("cpu_intensive.long_task", [3, 1000], "worker-cpu", queues.CPU_INTENSIVE),
        ("io_intensive.fetch_url", ["http://app:8000/healthz"], "worker-io", queues.IO_INTENSIVE),
        ("priority.health_check", [], "worker-priority", queues.PRIORITY),
        ("scheduled.beat_heartbeat", ["stack-test"], "worker-scheduled", queues.SCHEDULED),
    ],
)
def test_each_queue_is_served_by_its_own_worker_service(
    stack: Stack, task: str, args: list[Any], service: str, queue: str
) -> None:
    """A task sent to a queue is executed by a container of that queue's worker service."""
    app = stack.celery()
    result = app.send_task(f"{TASKS}.{task}", args=args)
    result.get(timeout=60)

    host = result.worker.split("@")[-1]
    assert stack.service_of_host(host) == service, result.worker


def test_production_workers_register_no_benchmark_or_drill_task(stack: Stack) -> None:
    """`celery inspect registered` on every worker lists product tasks only."""
    app = stack.celery()
    try:

        def all_five() -> dict[str, list[str]] | None:
            replies = app.control.inspect(timeout=3).registered() or {}
            queues_seen = {node.partition("@")[0] for node in replies}
            return replies if set(queues.ALL_QUEUES) <= queues_seen else None

        replies = wait_for(all_five, 60, "a registered-task reply from every worker service")
        foreign = {
            node: [n for n in names if not n.startswith(f"{TASKS}.")]
            for node, names in replies.items()
        }
        assert all(names for names in replies.values())
        assert {node: names for node, names in foreign.items() if names} == {}
    finally:
        app.close()


def test_scaled_cpu_workers_all_consume_and_flower_lists_them(stack: Stack) -> None:
    """After --scale worker-cpu=3, three nodes consume cpu_intensive, run tasks, show in Flower."""
    stack.up("--scale", "worker-cpu=3")
    app = stack.celery()
    try:

        def cpu_nodes() -> set[str] | None:
            replies = app.control.inspect(timeout=2).active_queues() or {}
            nodes = {
                n for n, qs in replies.items() if any(q["name"] == "cpu_intensive" for q in qs)
            }
            return nodes if len(nodes) == 3 else None

        nodes = wait_for(cpu_nodes, 60, "three cpu_intensive consumers")
        assert all(n.startswith("cpu_intensive@") for n in nodes)

        results = [
            app.send_task(f"{TASKS}.cpu_intensive.long_task", args=[4, 100_000]) for _ in range(12)
        ]
        ran_on = {r.get(timeout=120) and r.worker for r in results}
        assert ran_on == nodes

        def flower_cpu_workers() -> set[str] | None:
            resp = requests.get(
                f"{stack.flower_url}/api/workers",
                params={"refresh": "true"},
                auth=stack.flower_auth,
                timeout=30,
            )
            resp.raise_for_status()
            listed = {n for n in resp.json() if n.startswith("cpu_intensive@")}
            return listed if nodes <= listed else None

        wait_for(flower_cpu_workers, 60, "Flower listing the three cpu workers", every=2)
    finally:
        stack.up("--scale", "worker-cpu=1")


def test_demo_client_runs_a_task_on_every_queue_and_every_pattern(stack: Stack) -> None:
    """`make demo`: the client in the app container gets every sample result back, and
    every pattern (canvas, workflow, map-reduce job) returns its checked value."""
    out = stack.compose("exec", "-T", "app", "python", "-m", "celeryref.client", "demo")
    assert "7 succeeded, 0 failed" in out, out
    assert "% step " in out, out  # live PROGRESS lines of long_task
    for queue in queues.ALL_QUEUES:
        assert f" {queue} " in out, out
    checks = [line for line in out.splitlines() if line.startswith(PATTERN_ROWS)]
    assert len(checks) == len(PATTERN_ROWS) and all(" ok " in c for c in checks), out
    assert f"patterns: {len(PATTERN_ROWS)} ok, 0 wrong" in out, out


def test_flower_refuses_anonymous_and_serves_authenticated(stack: Stack) -> None:
    url = stack.flower_url
    assert requests.get(f"{url}/api/workers", timeout=10).status_code == 401
    assert requests.get(f"{url}/", timeout=10).status_code == 401
    assert (
        requests.get(f"{url}/api/workers", auth=("admin", "wrong"), timeout=10).status_code == 401
    )
    ok = requests.get(f"{url}/api/workers", auth=stack.flower_auth, timeout=30)
    assert ok.status_code == 200 and isinstance(ok.json(), dict)
    assert requests.get(f"{url}/healthcheck", timeout=10).text == "OK"
    assert "flower_events_total" in requests.get(f"{url}/metrics", timeout=10).text


def test_every_container_runs_as_non_root(stack: Stack) -> None:
    """No process of the deployment runs as uid 0 (redis/postgres included)."""
    users = {}
    for row in stack.containers():
        if row["State"] == "running":
            out = subprocess.run(
                ["docker", "exec", row["ID"], "id", "-u"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            users[row["Service"]] = int(out)
    assert {"redis", "postgres", "worker", "app", "beat", "flower"} <= set(users)
    assert all(uid != 0 for uid in users.values()), users


def test_redis_refuses_clients_without_the_password(stack: Stack) -> None:
    client = redis.Redis(host="127.0.0.1", port=int(STACK_ENV["REDIS_HOST_PORT"]))
    with pytest.raises(redis.AuthenticationError):
        client.ping()


def test_beat_fires_the_short_interval_job_and_a_scheduled_worker_runs_it(stack: Stack) -> None:
    env = stack.settings_env()
    dsn = (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@127.0.0.1:"
        f"{env['POSTGRES_PORT']}/{env['POSTGRES_DB']}"
    )

    def beat_rows() -> list[tuple[str, str]] | None:
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT worker, note FROM beat_heartbeats WHERE source = 'beat'")
            rows: list[tuple[str, str]] = cur.fetchall()
        return rows if len(rows) >= 2 else None

    rows = wait_for(beat_rows, 60, "two beat heartbeats in Postgres")
    for worker, note in rows:
        assert stack.service_of_host(worker.split("@")[-1]) == "worker-scheduled"
        assert note  # the kwargs arrived


def test_a_second_beat_stands_by_and_every_beat_stops_cleanly(stack: Stack) -> None:
    """--scale beat=2: one holds the lock, the other waits; `stop` ends both with exit 0
    (a beat that hung until the grace period would be killed: 137)."""
    stack.up("--scale", "beat=2")
    try:
        beats = stack.containers("beat")
        assert len(beats) == 2
        env = stack.settings_env()
        state = redis.Redis(
            host="127.0.0.1", port=int(env["REDIS_PORT"]), password=env["REDIS_PASSWORD"], db=2
        )
        assert state.exists(LOCK_KEY)
        wait_for(
            lambda: "beat standby" in stack.compose("logs", "--no-color", "beat"),
            120,
            "the second beat to report standby",
            every=1,
        )
        assert [holds_beat_lock(stack, b["ID"]) for b in beats].count(True) == 1
    finally:
        stack.compose("stop", "beat")
        assert [b["ExitCode"] for b in stack.containers("beat")] == [0, 0]
        assert not state.exists(LOCK_KEY), "a stopped beat kept the lock"
        stack.up("--scale", "beat=1")


def test_a_dead_lettered_task_is_stored_and_mailed_to_operators(stack: Stack) -> None:
    """Bad input: the task fails once, lands in the dead-letter store, and the alert
    e-mail travels worker-priority -> SMTP -> mailsink."""
    app = stack.celery()
    result = app.send_task(f"{TASKS}.default.summarize", args=[[]])
    with pytest.raises(Exception, match="non-empty list"):
        result.get(timeout=60)

    listed = stack.compose(
        "exec",
        "-T",
        "app",
        "python",
        "-m",
        "celeryref.client",
        "deadletters",
        "list",
        "--task",
        f"{TASKS}.default.summarize",
    )
    entries = [json.loads(line) for line in listed.splitlines()]
    assert [e["task_id"] for e in entries] == [result.id]
    assert entries[0]["category"] == "invalid_arguments" and entries[0]["retries"] == 0

    mailsink = f"http://127.0.0.1:{STACK_ENV['MAILSINK_HOST_PORT']}/messages"

    def alert_mail() -> list[dict[str, Any]] | None:
        messages = requests.get(mailsink, params={"to": "ops@localhost"}, timeout=10).json()
        return [m for m in messages if result.id in m["body"]] or None

    (mail,) = wait_for(alert_mail, 60, "the operator alert e-mail")
    assert "summarize dead-lettered" in mail["subject"]


def test_queued_tasks_survive_down_and_up(stack: Stack) -> None:
    """A task queued while no worker runs is still there after `down` + `up` (Redis AOF)."""
    stack.compose("stop", "worker")
    app = stack.celery()
    result = app.send_task(f"{TASKS}.default.add", args=[20, 22])
    broker = redis.Redis.from_url(app.conf.broker_url)
    assert queue_depths(broker)[queues.DEFAULT] == 1

    stack.compose("down")
    stack.up()

    fresh = stack.celery()
    assert AsyncResult(result.id, app=fresh).get(timeout=90) == 42
