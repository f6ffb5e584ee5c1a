"""Messages refused before any task runs (pickle, unknown task) are recorded, never run."""

from __future__ import annotations

import json
import pickle
import uuid
from pathlib import Path
from typing import Any

from kombu import Exchange, Producer

from celeryref import queues
from celeryref.celery_app import app
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.tasks import default


class Booby:
    """Unpickling this creates ``path``: proof that a body was deserialized."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


def publish_raw(body: bytes, content_type: str, task: str) -> str:
    """Put a protocol-2 task message straight onto the `default` queue, bypassing Celery."""
    task_id = str(uuid.uuid4())
    with app.connection_for_write() as conn:  # the app's transport options (priority sep)
        Producer(conn.channel()).publish(
            body,
            exchange=Exchange(queues.DEFAULT, type="direct"),
            routing_key=queues.DEFAULT,
            content_type=content_type,
            content_encoding="binary" if content_type.endswith("serialize") else "utf-8",
            headers={"task": task, "id": task_id, "lang": "py", "retries": 0},
            priority=queues.PRIORITY_NORMAL,
        )
    return task_id


def test_a_pickle_message_is_never_unpickled_and_is_recorded(worker: Any, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    body = pickle.dumps(((Booby(str(marker)),), {}, {}))
    task_id = publish_raw(body, "application/x-python-serialize", default.add.name)
    with worker(queues.DEFAULT):
        assert default.add.delay(1, 2).get(timeout=10) == 3  # the worker carries on
    assert not marker.exists(), "the pickle body was deserialized"
    (entry,) = [e for e in dead_letters.list_entries() if e.task_id == task_id]
    assert (entry.category, entry.exception_type) == ("invalid_task_message", "ContentDisallowed")
    assert entry.headers["content_type"] == "application/x-python-serialize"
    assert entry.headers["body_prefix_hex"] == body[:256].hex()


def test_a_message_for_an_unknown_task_is_not_run_and_is_recorded(worker: Any) -> None:
    body = json.dumps([[1, 2], {}, {}]).encode()
    task_id = publish_raw(body, "application/json", "celeryref.tasks.default.rm_rf")
    with worker(queues.DEFAULT):
        assert default.add.delay(2, 2).get(timeout=10) == 4
    (entry,) = [e for e in dead_letters.list_entries() if e.task_id == task_id]
    assert (entry.category, entry.task_name) == ("unknown_task", "celeryref.tasks.default.rm_rf")
