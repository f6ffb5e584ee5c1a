"""Bad input in the real deployment: delays the broker cannot hold, failing chords, poison
messages, messages pushed straight into Redis, and the locks around the drills.

Scenarios 6 and 12-15 of docs/RELIABILITY.md.
"""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from celery import chord

from celeryref.queues import PRIORITY_NORMAL, redis_keys
from tests.conftest import DOTENV, ROOT
from tests.stack.conftest import wait_for
from tests.stack.faults_support import (
    DRILLS,
    VISIBILITY_TIMEOUT,
    FaultStack,
    faults,
    new_key,
)

__all__ = ["faults"]

#: A countdown the fault stack cannot hold in Redis (delay + time limit + 60 s > visibility).
TOO_LONG = VISIBILITY_TIMEOUT + 60


def python_in_app(stack: FaultStack, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in the app container (the deployment's own client settings)."""
    return subprocess.run(
        stack.compose_command("exec", "-T", "app", "python", "-c", code),
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# -- 6. a delay longer than the visibility timeout -------------------------------------


def deferred(faults: FaultStack, task_id: str) -> list[tuple[Any, ...]]:
    """(published, error) of ``task_id``'s rows in ``deferred_tasks`` (F23)."""
    return faults.sql(
        "SELECT published_at IS NOT NULL, error FROM deferred_tasks WHERE task_id = %s",
        (task_id,),
    )


def test_a_countdown_beyond_the_visibility_timeout_is_held_in_postgres_not_redis(
    faults: FaultStack,
) -> None:
    """In the app container: apply_async with a countdown the broker cannot hold (Redis would
    redeliver it while a worker waits for its ETA) is kept in ``deferred_tasks`` (F23), not
    published; a countdown inside the bound is published and runs."""
    held = python_in_app(
        faults,
        "from celeryref.tasks.default import add\n"
        f"print(add.apply_async((1, 2), countdown={TOO_LONG}).id)",
    )
    assert held.returncode == 0, held.stderr
    task_id = held.stdout.strip().splitlines()[-1]
    assert deferred(faults, task_id) == [(False, None)]
    assert task_id not in faults.queued_task_ids("default") | faults.unacked_task_ids()

    accepted = python_in_app(
        faults,
        "from celeryref.tasks.default import add\n"
        "print(add.apply_async((1, 2), countdown=2).get(timeout=60))",
    )
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip().splitlines()[-1] == "3"


def test_send_task_with_a_countdown_beyond_the_visibility_timeout_is_held_too(
    faults: FaultStack,
) -> None:
    """In the app container: app.send_task by name with the same countdown is held too."""
    run = python_in_app(
        faults,
        "from celeryref.celery_app import app\n"
        f"print(app.send_task('celeryref.tasks.default.add', (1, 2), countdown={TOO_LONG}).id)",
    )
    assert run.returncode == 0, run.stderr
    task_id = run.stdout.strip().splitlines()[-1]
    assert deferred(faults, task_id) == [(False, None)]


def test_a_retry_the_broker_cannot_hold_is_held_in_postgres_not_dropped(
    faults: FaultStack,
) -> None:
    """retry_past_visibility asks for one retry with a backoff beyond what Redis can hold:
    the retry is held in Postgres for the sweep (F23), not dropped and not dead-lettered.
    (That the sweep publishes it when due, once, with the same id, is
    tests/integration/test_deferred_tasks.py.)"""
    key = new_key("retry-past-visibility")
    result = faults.send("retry_past_visibility", key)
    rows = wait_for(lambda: deferred(faults, result.id), 60, "the retry held in deferred_tasks")
    assert rows == [(False, None)]
    assert faults.state(result.id) not in ("FAILURE", "REVOKED")
    assert not faults.dead_letters(result.id)


# -- 12. a chord whose header fails -----------------------------------------------------


@pytest.mark.parametrize("failing", [[2], [1, 2]], ids=["one-part-fails", "two-parts-fail"])
def test_a_chord_with_a_failing_header_runs_its_error_callback_once_and_never_its_body(
    faults: FaultStack, failing: list[int]
) -> None:
    """A chord of four parts, some failing permanently: the chord result settles as FAILURE
    (nothing hangs), the body never runs, its error callback runs exactly once, and each
    part ran once."""
    key = new_key("chord")

    def drill(name: str, *args: Any, **kwargs: Any) -> Any:
        return faults.app.signature(f"{DRILLS}.{name}", args=args, kwargs=kwargs)

    header = [drill("chord_part", f"{key}-part-{i}", fail=i in failing) for i in range(4)]
    body = drill("chord_body", key=f"{key}-body")
    body.link_error(drill("chord_failed", key=f"{key}-errback"))
    result = chord(header, app=faults.app)(body)

    result.get(timeout=60, propagate=False)
    assert result.state == "FAILURE"
    assert "fails on purpose" in str(result.result)
    wait_for(lambda: faults.effects(f"{key}-errback"), 30, "the error callback")
    for i in range(4):
        assert len(faults.runs(f"{key}-part-{i}")) == 1
        assert len(faults.effects(f"{key}-part-{i}")) == (0 if i in failing else 1)
    assert faults.effects(f"{key}-body") == []
    assert len(faults.effects(f"{key}-errback")) == 1


# -- 13. poison messages, dead letters, replay over HTTP -------------------------------


def dead_letter_over_http(stack: FaultStack, task_id: str) -> dict[str, Any]:
    """The dead-letter entry of ``task_id`` as GET /dead-letters/{id} shows it."""

    def listed() -> dict[str, Any] | None:
        response = stack.api(
            "GET", "/dead-letters", params={"task": f"{DRILLS}.require_fixture"},
            headers=stack.api_auth,
        )  # fmt: skip
        response.raise_for_status()
        return next((e for e in response.json() if e["task_id"] == task_id), None)

    summary = wait_for(listed, 60, f"dead letter of {task_id} over HTTP")
    detail = stack.api("GET", f"/dead-letters/{summary['id']}", headers=stack.api_auth)
    assert detail.status_code == 200
    entry: dict[str, Any] = detail.json()
    return entry


def replay_over_http(stack: FaultStack, entry_id: int) -> dict[str, Any]:
    """POST /dead-letters/{id}/replay, then poll GET /tasks/{task_id} until it settles."""
    replay = stack.api("POST", f"/dead-letters/{entry_id}/replay", headers=stack.api_auth)
    assert replay.status_code == 202, replay.text
    task_id = replay.json()["task_id"]
    status: dict[str, Any] = wait_for(
        lambda: (
            b
            if (b := stack.api("GET", f"/tasks/{task_id}", headers=stack.api_auth).json())["state"]
            in ("SUCCESS", "FAILURE")
            else None
        ),
        60,
        "the replay to settle",
    )
    return status


def test_a_poison_message_is_dead_lettered_with_its_reason_and_one_replay_after_the_fix_succeeds(
    faults: FaultStack,
) -> None:
    """Bad arguments (a fixture that does not exist): dead-lettered at the first attempt with
    the reason and traceback, visible over HTTP; after the fix one replay (POST
    /dead-letters/{id}/replay) succeeds with the effect once; a second replay is refused (409)."""
    key = new_key("poison")
    result = faults.send("require_fixture", key)
    entry = dead_letter_over_http(faults, result.id)
    assert entry["category"] == "invalid_arguments"
    assert f"drill fixture '{key}' does not exist" in entry["exception"]
    assert entry["args"] == [key] and "require_fixture" in (entry["traceback"] or "")
    assert faults.api("GET", f"/dead-letters/{entry['id']}").status_code == 401

    faults.sql("INSERT INTO drill_fixtures (key) VALUES (%s)", (key,))
    status = replay_over_http(faults, entry["id"])
    assert status["state"] == "SUCCESS" and status["result"] == {"key": key, "fixed": True}
    again = faults.api("POST", f"/dead-letters/{entry['id']}/replay", headers=faults.api_auth)
    assert again.status_code == 409
    assert len(faults.effects(key)) == 1


#: Retries of the transient poison drill (drills.QUICK_RETRIES.max_retries).
QUICK_RETRIES = 3


def test_a_transient_poison_message_is_dead_lettered_after_its_retries(faults: FaultStack) -> None:
    """A dependency that stays down: the drill runs 1 + max_retries times with backoff, then
    lands in the dead-letter store with its retry count and reason."""
    key = new_key("poison-transient")
    result = faults.send("require_fixture", key, True)
    entry = dead_letter_over_http(faults, result.id)
    assert entry["category"] == "upstream_unavailable"
    assert entry["retries"] == QUICK_RETRIES
    assert len(faults.runs(key)) == QUICK_RETRIES + 1
    assert faults.effects(key) == []


def test_a_replay_after_a_transient_poison_message_succeeds(faults: FaultStack) -> None:
    """Transient poison, dead-lettered, then fixed: one replay over HTTP succeeds at once."""
    key = new_key("poison-replay")
    result = faults.send("require_fixture", key, True)
    entry = dead_letter_over_http(faults, result.id)
    faults.sql("INSERT INTO drill_fixtures (key) VALUES (%s)", (key,))
    status = replay_over_http(faults, entry["id"])
    assert status["state"] == "SUCCESS", status["error"]
    assert len(faults.effects(key)) == 1


# -- 14. messages pushed straight into Redis -------------------------------------------


class Booby:
    """Unpickling this creates ``path`` in the process that unpickles it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def push_raw(stack: FaultStack, body: bytes, content_type: str, task: str) -> str:
    """LPUSH a task envelope onto `default`, in kombu's Redis format, bypassing every client."""
    task_id = str(uuid.uuid4())
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "binary" if "pickle" in content_type else "utf-8",
        "content-type": content_type,
        "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id,
                    "parent_id": None, "group": None, "retries": 0},
        "properties": {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                       "delivery_info": {"exchange": "default", "routing_key": "default"},
                       "priority": PRIORITY_NORMAL, "body_encoding": "base64",
                       "delivery_tag": str(uuid.uuid4())},
    }  # fmt: skip
    stack.redis(0).lpush(redis_keys("default")[PRIORITY_NORMAL], json.dumps(envelope))
    return task_id


def test_a_pickle_message_pushed_into_redis_is_never_deserialized_and_is_recorded(
    faults: FaultStack,
) -> None:
    """A pickle body whose unpickling would create a file in the worker: refused by content
    type without being decoded (no file), recorded as a dead letter, and the worker goes on."""
    marker = f"/tmp/unpickled-{uuid.uuid4().hex}"  # noqa: S108 - inside the worker container
    body = pickle.dumps(((Booby(marker),), {}, {}))
    task_id = push_raw(faults, body, "application/x-python-serialize", f"{DRILLS}.record_event")

    (entry,) = wait_for(lambda: faults.dead_letters(task_id), 60, "the refused message's record")
    assert (entry["category"], entry["exception_type"]) == (
        "invalid_task_message",
        "ContentDisallowed",
    )
    worker = faults.container_id("worker")
    probe = faults.exec_in(worker, "sh", "-c", f"test -e {marker} && echo yes || echo no")
    assert probe.strip() == "no", "the pickle body was deserialized"
    assert faults.app.send_task("celeryref.tasks.default.add", args=[1, 2]).get(timeout=60) == 3
    assert task_id not in faults.queued_task_ids("default") | faults.unacked_task_ids()


def test_a_message_for_an_unknown_task_pushed_into_redis_is_never_run_and_is_recorded(
    faults: FaultStack,
) -> None:
    """A well-formed JSON message naming a task no worker has: not run, recorded, dropped
    from the queue (no redelivery loop)."""
    body = json.dumps([["/"], {}, {}]).encode()
    task_id = push_raw(faults, body, "application/json", "celeryref.tasks.default.rm_rf")

    (entry,) = wait_for(lambda: faults.dead_letters(task_id), 60, "the refused message's record")
    assert (entry["category"], entry["task_name"]) == (
        "unknown_task",
        "celeryref.tasks.default.rm_rf",
    )
    assert task_id not in faults.queued_task_ids("default") | faults.unacked_task_ids()


# -- 15. locks: drills, Postgres ---------------------------------------------------------


def test_drills_refuse_to_run_without_fault_injection(faults: FaultStack) -> None:
    """A worker image without FAULT_INJECTION=1 refuses crash_process instead of exiting, and
    the shipped compose file gives no service FAULT_INJECTION."""
    run = faults.run_once(
        "worker",
        "python", "-c",
        "from devtools.tasks.default import drills\ndrills.crash_process.run('refused')",
        env={"FAULT_INJECTION": "0"},
    )  # fmt: skip
    assert run.returncode == 1, (run.returncode, run.stderr[-500:])
    assert "runs only where FAULT_INJECTION=1" in run.stderr

    shipped = json.loads(
        FaultStack.docker(faults, "compose", "-f", str(ROOT / "docker-compose.yml"),
                          "config", "--format", "json")
    )  # fmt: skip
    for name, service in shipped["services"].items():
        assert "FAULT_INJECTION" not in (service.get("environment") or {}), name


def test_postgres_refuses_a_client_with_a_wrong_password(faults: FaultStack) -> None:
    """The published Postgres port (127.0.0.1 only) does not let a wrong password in."""
    env = faults.settings_env()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            host="127.0.0.1",
            port=int(env["POSTGRES_PORT"]),
            user=DOTENV["POSTGRES_USER"],
            password="not-" + DOTENV["POSTGRES_PASSWORD"],
            dbname=DOTENV["POSTGRES_DB"],
            connect_timeout=10,
        )
