"""Fixtures and helpers shared by the workflow, canvas and domain-task tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from celeryref import queues
from celeryref.adapters import db
from celeryref.settings import settings
from celeryref.workflows import status
from tests.conftest import wait_for
from tests.integration import test_mailsink
from tests.integration.test_mailsink import Sink

T = TypeVar("T")

#: The mail sink fixture of the mail-sink tests (a fixture must be visible by name).
start_sink = test_mailsink.start_sink

#: The queues the domain tasks and step tasks run on.
WORK_QUEUES = (queues.DEFAULT, queues.CPU_INTENSIVE, queues.IO_INTENSIVE)
#: Tables of workflows and domain tasks (``clean_state`` does not know them).
TABLES = "workflow_executions, workflow_steps, email_logs, users, dataset_records, dataset_results"


@pytest.fixture
def domain_tables(clean_state: None) -> Iterator[None]:
    """Empty workflow and domain tables before each test."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    yield


@pytest.fixture
def smtp_sink(start_sink: Callable[..., Sink], monkeypatch: pytest.MonkeyPatch) -> Sink:
    """A real ``python -m devtools.mailsink``; notification tasks send to it."""
    from celeryref.tasks.io_intensive import email

    sink = start_sink()
    local = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": sink.smtp_port})
    monkeypatch.setattr(email, "settings", local)
    return sink


def finished(execution_id: str, timeout: float = 60) -> status.ExecutionState:
    """The execution once it is no longer running."""

    def done() -> status.ExecutionState | None:
        state = status.load(execution_id)
        return None if state.status == "running" else state

    return wait_for(done, timeout, f"execution {execution_id} to finish")


def step_is(execution_id: str, step: str, wanted: str) -> Callable[[], bool]:
    return lambda: status.load(execution_id).step(step).status == wanted


def mails_to(sink: Sink, address: str, count: int = 1) -> Callable[[], list[dict[str, Any]]]:
    def probe() -> list[dict[str, Any]]:
        found = sink.messages(f"?to={address}")
        return found if len(found) >= count else []

    return probe
