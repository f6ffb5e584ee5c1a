"""``GET /workers`` from a snapshot: one background thread asks the workers, requests read.

A request never broadcasts (see :mod:`celeryref.api.broadcasts` for the deadlock that
per-request ``inspect()`` calls ran into) and never holds a request thread: the route is
``async`` and only reads :attr:`WorkerSnapshots.latest`.

Staleness is bounded. A reader gets the newest snapshot when it is at most
:data:`MAX_AGE_SECONDS` old, and wakes the refresher when it is older than
:data:`REFRESH_SECONDS` (the next reader sees the new one). With none young enough it
awaits one (no thread held) for up to :data:`WAIT_SECONDS`, then gets
:class:`SnapshotUnavailable` (503 + ``Retry-After``). So a flood of readers causes at
most one round of broadcasts per :data:`REFRESH_SECONDS`, and an idle API sends none.

A round, on the refresher's own broker connection (``app.connection_for_write()``,
never from ``app.pool``): ``active_queues`` to every worker, collecting replies for
:data:`INSPECT_TIMEOUT` (who is alive is not known in advance); then ``active``,
``reserved`` and ``stats`` limited to the workers that answered, each over as soon as
they all have. The snapshot's age counts from the start of its round.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio
from celery import Celery
from kombu.connection import Connection

from celeryref.api.broadcasts import dedicated_mailbox

logger = logging.getLogger(__name__)

#: Seconds a round waits for workers to answer ``active_queues``.
INSPECT_TIMEOUT = 1.0
#: Fewest seconds between the starts of two rounds, however many readers ask.
REFRESH_SECONDS = 2.0
#: Oldest snapshot (seconds) a reader is given.
MAX_AGE_SECONDS = 10.0
#: Seconds a reader awaits a young enough snapshot before :class:`SnapshotUnavailable`.
WAIT_SECONDS = 10.0
#: Seconds between a waiting reader's looks at the snapshot.
POLL_SECONDS = 0.05


class SnapshotUnavailable(Exception):
    """No worker snapshot young enough could be taken (the broker is unreachable)."""


@dataclass(frozen=True)
class Snapshot:
    #: One dict per worker that answered: name, queues, active, reserved, pool.
    workers: list[dict[str, Any]]
    #: ``time.monotonic()`` when its round started.
    taken_at: float

    @property
    def age(self) -> float:
        return time.monotonic() - self.taken_at


def collect(
    app: Celery, connection: Connection, timeout: float = INSPECT_TIMEOUT
) -> list[dict[str, Any]]:
    """One round of broadcasts on ``connection``: every worker that answered."""
    mailbox = dedicated_mailbox(app, connection)

    def ask(command: str, limit: int | None) -> dict[str, Any]:
        replies = mailbox.multi_call(command, timeout=timeout, limit=limit) or []
        return {name: body for reply in replies for name, body in reply.items()}

    queues = ask("active_queues", None)
    if not queues:
        return []
    active, reserved, stats = (ask(c, len(queues)) for c in ("active", "reserved", "stats"))
    return [
        {
            "name": name,
            "queues": sorted(q["name"] for q in queues[name]),
            "active": len(active.get(name, [])),
            "reserved": len(reserved.get(name, [])),
            "pool": {
                k: v
                for k, v in stats.get(name, {}).get("pool", {}).items()
                if k in ("implementation", "max-concurrency", "processes")
            },
        }
        for name in sorted(queues)
    ]


class WorkerSnapshots:
    """The newest snapshot of ``app``'s workers and the one thread that takes them."""

    def __init__(self, app: Celery, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.app = app
        self.refresh_seconds = refresh_seconds
        self.latest: Snapshot | None = None
        self._wanted = threading.Event()
        self._stopping = threading.Event()  # the running refresher's own
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    async def fresh(self, max_age: float = MAX_AGE_SECONDS, wait: float = WAIT_SECONDS) -> Snapshot:
        """The newest snapshot at most ``max_age`` old, awaiting one up to ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            snapshot = self.latest
            age = snapshot.age if snapshot is not None else math.inf
            if age > self.refresh_seconds:
                self.want()
            if snapshot is not None and age <= max_age:
                return snapshot
            if time.monotonic() >= deadline:
                raise SnapshotUnavailable(f"no worker snapshot taken in the last {max_age:g}s")
            await anyio.sleep(POLL_SECONDS)

    def want(self) -> None:
        """Ask for a round soon (starts the refresher in this process if needed)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._stopping = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stopping,), name="worker-snapshot", daemon=True
                )
                self._pid = os.getpid()
                self._thread.start()
        self._wanted.set()

    def stop(self, timeout: float = 10.0) -> None:
        """End the refresher (it closes its connection) and forget the snapshot; the next
        :meth:`want` starts again from nothing."""
        with self._lock:
            thread, self._thread = self._thread, None
            self.latest = None
            self._stopping.set()
            self._wanted.set()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, stopping: threading.Event) -> None:
        connection: Connection | None = None
        try:
            while not stopping.is_set():
                self._wanted.wait()
                self._wanted.clear()
                if stopping.is_set():
                    break
                started = time.monotonic()
                try:
                    connection = connection or self.app.connection_for_write()
                    workers = collect(self.app, connection)
                    if not stopping.is_set():  # a stopped refresher's round is forgotten
                        self.latest = Snapshot(workers, started)
                except Exception as exc:
                    logger.warning("worker snapshot not taken: %s: %s", type(exc).__name__, exc)
                    _close(connection)
                    connection = None
                # Pace the rounds: at most one per refresh_seconds.
                stopping.wait(self.refresh_seconds - (time.monotonic() - started))
        finally:
            _close(connection)


def _close(connection: Connection | None) -> None:
    if connection is not None:
        try:
            connection.release()  # type: ignore[no-untyped-call]
        except Exception as exc:  # a connection that broke may fail to close as well
            logger.debug("closing the snapshot connection: %r", exc)
