"""Task events leave a worker in batches (issue 15, :mod:`celeryref.upstream.events`).

A real worker process runs a burst of short tasks while this test listens to the
event exchange on Redis, as Flower does. With the batching on, every task's
received/started/succeeded events arrive, in far fewer publishes than events; the
control runs the same worker with ``TASK_EVENTS_FLUSH_INTERVAL=0`` (Celery's own
flush on every event) and sees about one publish per event.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from typing import Any

import redis

from celeryref import queues
from celeryref.settings import settings
from celeryref.tasks import default
from tests.conftest import wait_for

TASKS = 60
KINDS = ("task-received", "task-started", "task-succeeded")


class EventTap:
    """Every task-event publish on the broker's event exchange, and the events in them."""

    def __init__(self) -> None:
        self.pubsub = redis.Redis.from_url(settings.broker_url).pubsub()
        self.pubsub.psubscribe("*celeryev/task.*")
        self.publishes = 0
        self.events: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EventTap:
        self.pubsub.get_message(timeout=5)  # the psubscribe confirmation
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)
        self.pubsub.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message or message["type"] != "pmessage":
                continue
            self.publishes += 1
            envelope = json.loads(message["data"])
            body = envelope["body"]
            if envelope.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            decoded = json.loads(body)
            for event in decoded if isinstance(decoded, list) else [decoded]:
                self.events[(event["type"], event.get("uuid", ""))] += 1

    def complete(self, ids: list[str]) -> bool:
        return all(self.events[(kind, i)] for kind in KINDS for i in ids)


def burst(worker_process: Any, name: str, env: dict[str, str]) -> EventTap:
    worker_process(queues.DEFAULT, name=name, concurrency=2, env=env)
    with EventTap() as tap:
        results = [default.add.apply_async((i, 1), queue=queues.DEFAULT) for i in range(TASKS)]
        ids = [r.id for r in results]
        wait_for(lambda: tap.complete(ids), 60, "every task's events")
    return tap


def test_task_events_of_many_tasks_share_one_publish(worker_process: Any) -> None:
    """Given a burst of short tasks, every task event arrives, in batches."""
    tap = burst(worker_process, "batched", {"TASK_EVENTS_FLUSH_INTERVAL": "0.1"})
    assert tap.publishes * 4 <= TASKS, f"{tap.publishes} publishes for {TASKS} tasks"


def test_control_celery_publishes_every_task_event_on_its_own(worker_process: Any) -> None:
    """Control (P1): Celery's flush on every event: about one publish per event."""
    tap = burst(worker_process, "stock", {"TASK_EVENTS_FLUSH_INTERVAL": "0"})
    assert tap.publishes >= TASKS, f"{tap.publishes} publishes for {TASKS} tasks"
