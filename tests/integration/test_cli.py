"""The image's CLI against real Redis, Postgres and workers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from celeryref import queues
from celeryref.client.__main__ import main as cli


def test_submit_with_watch_prints_the_id_progress_and_result(
    worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # 8 steps of 1,000,000 hash rounds: about 0.3 s each here, so the 0.2 s poll of
    # --watch sees several PROGRESS states even on a machine three times faster.
    with worker(queues.CPU_INTENSIVE):
        code = cli(["submit", "long_task", "n=8", "work=1000000", "--watch"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    final = json.loads(lines[-1])
    assert final["state"] == "SUCCESS" and final["result"]["steps"] == 8
    assert final["task_id"] == lines[0]
    bars = [line for line in lines[1:-1] if line.startswith("[")]
    assert bars and "% step " in bars[-1]


def test_status_of_a_submitted_task(worker: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["submit", "add", "--json", '{"x": 2, "y": 3}']) == 0
    task_id = capsys.readouterr().out.strip()
    with worker(queues.DEFAULT):
        assert cli(["status", task_id, "--watch"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["result"] == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "nope"], "unknown task 'nope'"),
        (["submit", "add", "x=1"], "y: Field required"),
        (["submit", "add", "x"], "expected NAME=VALUE"),
        (["status", "never-submitted"], "no task 'never-submitted'"),
        (["deadletters", "show", "999"], "no dead letter with id 999"),
    ],
)
def test_bad_input_is_exit_2_with_a_message(
    clean_state: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli(argv) == 2
    assert message in capsys.readouterr().err


def test_queues_and_workers(worker: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cli(["submit", "add", "x=1", "y=1"])
    capsys.readouterr()
    assert cli(["queues"]) == 0
    assert "default        1" in capsys.readouterr().out
    with worker(queues.PRIORITY):
        # Replies are collected for the whole --timeout: 5 s keeps a slow reply in.
        assert cli(["workers", "--timeout", "5"]) == 0
        assert "priority@" in capsys.readouterr().out
    assert cli(["workers", "--timeout", "0.5"]) == 1  # nobody answers now
    assert "no worker answered within 0.5s" in capsys.readouterr().err
