"""The worker liveness file: the cheap proof a worker container's healthcheck reads.

A worker writes ``DIRECTORY/<queue>`` (the time, as text) for each queue its task
consumer consumes, every :data:`BEAT_SECONDS`, from its event loop and only after
Redis answered a ``PING`` on the consumer's connection
(:class:`celeryref.app.liveness.WorkerLiveness`). A file is removed when its queue is
no longer consumed (``cancel_consumer``), when the consumer stops or restarts after a
lost connection, and at shutdown. So a fresh file means: the consumer loop runs, it
reaches Redis, and it consumes that queue.

The healthcheck (:mod:`celeryref.observability.health`) only reads the file: the
check used to ask the worker over the broker (``inspect active_queues``), which
started a Python process importing Celery, kombu and every task module, ~0.58 s of
CPU per check per container (measured in the worker image; docs/PERFORMANCE.md).
This module imports the standard library only, so the check costs a bare
interpreter start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

#: Where the files live: ``/tmp`` is writable in every profile (tmpfs when the root
#: filesystem is read-only; an ``emptyDir`` on Kubernetes).
DIRECTORY = Path(os.environ.get("WORKER_LIVENESS_DIR", "/tmp/celeryref-liveness"))  # noqa: S108
#: Seconds between two writes.
BEAT_SECONDS = 2.0
#: Default age (seconds) past which a file no longer proves anything: several missed
#: beats, so a loop busy for a while (a slow dead-letter record, F20) is not flagged.
MAX_AGE_SECONDS = 30.0


def path(queue: str) -> Path:
    """The file that proves ``queue`` is consumed."""
    return DIRECTORY / queue


def write(queues: Iterable[str], now: float | None = None) -> None:
    """Record ``queues`` as consumed now."""
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.time() if now is None else now:.3f}\n"
    for queue in queues:
        temporary = path(queue).with_name(f".{queue}.tmp")
        temporary.write_text(stamp)
        temporary.replace(path(queue))  # atomic: a reader never sees a half-written file


def forget(queues: Iterable[str]) -> None:
    """Remove the files of ``queues`` (no longer consumed, or the consumer stopped)."""
    for queue in queues:
        path(queue).unlink(missing_ok=True)


def problem(queue: str, max_age: float = MAX_AGE_SECONDS, now: float | None = None) -> str | None:
    """Why ``queue``'s file does not prove it is consumed, or ``None`` when it does."""
    try:
        written = float(path(queue).read_text())
    except FileNotFoundError:
        return f"no worker here consumes {queue!r} (no {path(queue)})"
    except ValueError:
        return f"{path(queue)} does not hold a time"
    age = (time.time() if now is None else now) - written
    if age > max_age:
        return f"the worker consuming {queue!r} last proved it reaches Redis {age:.0f}s ago"
    return None
