"""The HTTP API of the running stack, over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from celeryref import queues
from tests.conftest import DOTENV, ROOT
from tests.stack.conftest import STACK_ENV, Stack, wait_for

BASE = f"http://127.0.0.1:{STACK_ENV['APP_HOST_PORT']}"
AUTH = {"Authorization": f"Bearer {DOTENV['API_TOKEN']}"}
SERVICE_OF = {
    queues.DEFAULT: "worker",
    queues.CPU_INTENSIVE: "worker-cpu",
    queues.IO_INTENSIVE: "worker-io",
    queues.PRIORITY: "worker-priority",
    queues.SCHEDULED: "worker-scheduled",
}


def submit(task: str, args: dict[str, Any], **extra: Any) -> str:
    response = requests.post(
        f"{BASE}/tasks", json={"task": task, "args": args, **extra}, headers=AUTH, timeout=10
    )
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def finished(task_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = requests.get(f"{BASE}/tasks/{task_id}", headers=AUTH, timeout=10).json()
    return body if body["state"] in ("SUCCESS", "FAILURE") else None


@pytest.mark.parametrize(
    ("task", "args", "queue", "expected"),
    [
        ("add", {"x": 20, "y": 22}, queues.DEFAULT, 42),
        ("long_task", {"n": 5, "work": 1000}, queues.CPU_INTENSIVE, None),
        ("fetch_url", {"url": "http://app:8000/healthz"}, queues.IO_INTENSIVE, None),
        ("health_check", {}, queues.PRIORITY, None),
        ("cleanup_sessions", {}, queues.SCHEDULED, 0),
    ],
)
def test_submit_poll_result_on_every_queue(
    stack: Stack, task: str, args: dict[str, Any], queue: str, expected: Any
) -> None:
    """202 + task id; polling reaches SUCCESS on a worker of the queue's service."""
    task_id = submit(task, args)
    done = wait_for(lambda: finished(task_id), 60, f"{task} to finish")
    assert done["state"] == "SUCCESS", done
    if expected is not None:
        assert done["result"] == expected
    assert stack.service_of_host(done["worker"].split("@")[-1]) == SERVICE_OF[queue]


def test_live_progress_over_http(stack: Stack) -> None:
    task_id = submit("long_task", {"n": 40, "work": 100_000})
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while (body := requests.get(f"{BASE}/tasks/{task_id}", headers=AUTH, timeout=10).json())[
        "state"
    ] != "SUCCESS":
        if body["progress"]:
            seen.append(body["progress"]["current"])
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    assert len(set(seen)) >= 2 and seen == sorted(seen)


def test_auth_is_required_for_mutations(stack: Stack) -> None:
    body = {"task": "add", "args": {"x": 1, "y": 1}}
    assert requests.post(f"{BASE}/tasks", json=body, timeout=10).status_code == 401
    assert requests.get(f"{BASE}/dead-letters", timeout=10).status_code == 401
    bad = requests.post(f"{BASE}/tasks", json={"task": "nope"}, headers=AUTH, timeout=10)
    assert bad.status_code == 422 and "submittable tasks" in bad.text


def test_openapi_document_fuzzed_with_schemathesis(stack: Stack) -> None:
    """Schemathesis over every operation of the published OpenAPI document: no 5xx, every
    response matches its documented schema."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{BASE}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "-H",
            f"Authorization: {AUTH['Authorization']}",
            "--max-examples",
            "40",
            "--seed",
            "20261121",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=os.environ.copy(),
    )
    assert run.returncode == 0, run.stdout[-6000:]
    assert " passed" in run.stdout and " failed" not in run.stdout.split("SUMMARY")[-1]
