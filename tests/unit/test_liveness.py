"""The worker liveness files and the healthcheck that reads them (no broker, no Celery)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from celeryref.app.liveness import WorkerLiveness
from celeryref.observability import health, liveness


@pytest.fixture(autouse=True)
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(liveness, "DIRECTORY", tmp_path / "liveness")
    return tmp_path / "liveness"


def test_a_fresh_proof_passes_and_an_old_one_fails() -> None:
    """A proof younger than the max age passes; an older one names its age."""
    liveness.write(["default"], now=1000.0)
    assert liveness.problem("default", max_age=30, now=1029.0) is None
    assert "31s ago" in (liveness.problem("default", max_age=30, now=1031.0) or "")


def test_a_queue_without_a_proof_fails() -> None:
    """No file: no worker here consumes the queue."""
    liveness.write(["priority"])
    assert "no worker here consumes 'default'" in (health.check_worker("default") or "")


def test_a_garbled_proof_fails(directory: Path) -> None:
    directory.mkdir()
    (directory / "default").write_text("not a time")
    assert "does not hold a time" in (liveness.problem("default") or "")


class FakeConsumer:
    """The attributes of Celery's consumer the step uses."""

    def __init__(self, queues: list[str]) -> None:
        self.client = SimpleNamespace(ping=lambda: True)
        channel = SimpleNamespace(conn_or_acquire=lambda: nullcontext(self.client))
        self.connection = SimpleNamespace(default_channel=channel)
        self.task_consumer = SimpleNamespace(queues=[SimpleNamespace(name=q) for q in queues])
        self.timer = SimpleNamespace(call_repeatedly=lambda *a: SimpleNamespace(cancel=lambda: 0))


def step() -> Any:
    return WorkerLiveness(SimpleNamespace())


def test_the_step_proves_each_consumed_queue_and_forgets_a_cancelled_one() -> None:
    """Each beat writes the consumed queues; a queue no longer consumed loses its file."""
    c, s = FakeConsumer(["default", "priority"]), step()
    s.start(c)
    assert health.check_worker("default") is None and health.check_worker("priority") is None
    c.task_consumer.queues = c.task_consumer.queues[:1]
    s.beat(c)
    assert health.check_worker("default") is None
    assert health.check_worker("priority") is not None


def test_no_proof_while_redis_does_not_answer() -> None:
    """A PING that fails removes the proofs: the check fails before they age out."""
    c, s = FakeConsumer(["default"]), step()
    s.start(c)

    def refuse() -> None:
        raise ConnectionError("Redis is down")

    c.client.ping = refuse
    s.beat(c)
    assert health.check_worker("default") is not None


def test_stopping_the_consumer_removes_its_proofs() -> None:
    """Shutdown, or the consumer's restart after a lost connection, fails the check at once."""
    c, s = FakeConsumer(["default"]), step()
    s.start(c)
    s.stop(c)
    assert health.check_worker("default") is not None


def test_the_worker_check_imports_neither_celery_nor_a_redis_client() -> None:
    """The check costs an interpreter start: it used to import the app (~0.58 s CPU)."""
    probe = (
        "import sys; from celeryref.observability import health; "
        "health.main(['worker', 'default']); "
        "print(sorted(set(sys.modules) & "
        "{'celery', 'kombu', 'redis', 'pydantic', 'celeryref.settings', 'urllib.request'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
