"""Workflows in the real deployment: state in Postgres outlives a worker restart, and
the notification travels worker-io -> SMTP -> the compose mailsink."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from typing import Any

import psycopg2
import requests

from tests.stack.conftest import STACK_ENV, Stack, wait_for

RECORDS = [
    {"id": 1, "name": "alpha", "value": 10, "category": "a"},
    {"id": 2, "name": "beta", "value": 30, "category": "b"},
    {"id": 3, "name": "gamma"},
]
#: data_processing with a slow step on the `default` worker, during which it restarts.
DEFINITION = {
    "name": "restartable",
    "steps": [
        {"name": "validate", "task": "records.validate"},
        {"name": "hold", "task": "flow.wait", "depends_on": ["validate"], "params": {"seconds": 8}},
        {"name": "clean", "task": "records.clean", "depends_on": ["validate", "hold"]},
        {"name": "analyze", "task": "records.analyze", "depends_on": ["clean"]},
        {"name": "report", "task": "reports.generate", "depends_on": ["analyze"]},
        {"name": "notify", "task": "email.notify", "depends_on": ["report"]},
    ],
}


def dsn(stack: Stack) -> str:
    env = stack.settings_env()
    return (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@127.0.0.1:"
        f"{env['POSTGRES_PORT']}/{env['POSTGRES_DB']}"
    )


def steps(stack: Stack, execution_id: str) -> dict[str, dict[str, Any]]:
    with psycopg2.connect(dsn(stack)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT name, status, attempts, started_at, finished_at, result"
            " FROM workflow_steps WHERE execution_id = %s",
            (execution_id,),
        )
        keys = ("status", "attempts", "started_at", "finished_at", "result")
        return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in cur.fetchall()}


def execution_status(stack: Stack, execution_id: str) -> str:
    with psycopg2.connect(dsn(stack)) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM workflow_executions WHERE id = %s", (execution_id,))
        row = cur.fetchone()
    return str(row[0]) if row else "missing"


def started_at(stack: Stack, service: str) -> datetime:
    [container] = stack.containers(service)
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.StartedAt}}", container["ID"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return datetime.fromisoformat(out[:26].rstrip("Z") + "+00:00")


def test_workflow_state_survives_a_worker_restart_and_the_workflow_completes(
    stack: Stack,
) -> None:
    """The `worker` container restarts while a step runs: the step and the workflow state
    in Postgres are intact, the restarted worker runs the remaining steps, and the
    summary e-mail reaches the compose mailsink."""
    payload = {"records": RECORDS, "title": "Restart drill", "notify": ["wf@example.com"]}
    execution_id = stack.compose(
        "exec",
        "-T",
        "app",
        "python",
        "-m",
        "celeryref.workflows",
        "start",
        "--definition",
        json.dumps(DEFINITION),
        "--input",
        json.dumps(payload),
    ).strip()

    wait_for(
        lambda: steps(stack, execution_id)["hold"]["status"] == "running",
        60,
        "the hold step to run",
    )
    before = steps(stack, execution_id)
    assert before["validate"]["status"] == "succeeded"
    stack.compose("restart", "worker")
    restarted = started_at(stack, "worker")

    wait_for(lambda: execution_status(stack, execution_id) != "running", 180, "the workflow to end")
    after = steps(stack, execution_id)
    tree = stack.compose(
        "exec", "-T", "app", "python", "-m", "celeryref.workflows", "status", execution_id
    )
    assert execution_status(stack, execution_id) == "succeeded", tree
    assert {s["status"] for s in after.values()} == {"succeeded"}, tree
    assert after["validate"]["result"] == before["validate"]["result"]
    assert after["clean"]["started_at"] > restarted, "clean ran on the restarted worker"
    assert f"restartable {execution_id}: succeeded" in tree

    mailsink = f"http://127.0.0.1:{STACK_ENV['MAILSINK_HOST_PORT']}/messages"

    def summary_mail() -> list[dict[str, Any]] | None:
        found = requests.get(mailsink, params={"to": "wf@example.com"}, timeout=10).json()
        return found or None

    (mail,) = wait_for(summary_mail, 60, "the workflow's summary e-mail")
    assert mail["subject"] == "Restart drill"
    assert after["report"]["result"]["sha256"] in mail["body"]
