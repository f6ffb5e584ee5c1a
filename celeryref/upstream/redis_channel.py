"""kombu's Redis channel with two holes of a broker restart closed (findings F12, F13).

**F12, a crash.** When a worker loses the broker, Celery 5.7 first ``collect()``s the
connection (close its channel, then detach the transport: ``transport.client = None``)
and then ``close()``s it. If Redis is down, the first channel close fails early
(draining the pending ``BRPOP``), so the second one runs the rest: it requeues the
channel's unacknowledged messages through a new connection pool built from the detached
transport's settings, and ``None.hostname`` raises ``AttributeError``. That is not a
connection error, nobody catches it, the worker dies with "Unrecoverable error" and only
Docker's restart policy brings it back. Here a channel whose transport is detached
raises a connection error instead; Celery ignores those while it tears a connection
down, and the worker reconnects by itself. The messages it could not requeue are still
in Redis's ``unacked`` hash and come back with the visibility-timeout sweep.

**F13, a lost message.** ``BRPOP`` removes a message from its queue; only then does the
consumer record it in the ``unacked`` hash. When Redis goes away between the two, the
record fails, kombu drops the message, and it exists nowhere any more. Here a message
whose record failed is kept in this process (:class:`QoS`) and pushed back onto its
queue by the next channel this process opens, that is when the worker has reconnected.
What is still lost: a process that dies in that window (SIGKILL, finding F9).

F12 was seen in the fault suite's Redis restart drill (docs/RELIABILITY.md, scenario
8); F13 is a path in kombu's code, found while reading it for that drill and
reproduced by ``tests/integration/test_broker_transport.py``.

kombu chooses the channel class through ``Transport.Channel``; :func:`install` sets it
on kombu's Redis transport (not a transport of our own: broker URLs, Flower and the
worker banner keep the plain ``redis://`` scheme), and :mod:`celeryref.celery_app`
installs it, so every process that builds the app has it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, NamedTuple

import redis
from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)


class Orphan(NamedTuple):
    """A message popped from its queue that could not be recorded as unacknowledged."""

    pid: int
    payload: dict[str, Any]
    exchange: str
    routing_key: str


_orphans: list[Orphan] = []
_orphans_lock = threading.Lock()


def orphans() -> list[Orphan]:
    """Messages this process holds until it can push them back (a copy)."""
    with _orphans_lock:
        return list(_orphans)


def _task_id(payload: dict[str, Any]) -> str:
    return str((payload.get("headers") or {}).get("id", "?"))


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS; a delivery it cannot record becomes an orphan, not a loss."""

    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            super().append(message, delivery_tag)
        except self.channel.connection_errors:
            info = message.delivery_info
            orphan = Orphan(os.getpid(), message._raw, info["exchange"], info["routing_key"])
            with _orphans_lock:
                _orphans.append(orphan)
            logger.warning(
                "broker lost while receiving task %s; it is requeued on reconnect",
                _task_id(orphan.payload),
            )
            raise


class Channel(kombu_redis.Channel):
    """kombu's Redis channel: :class:`QoS`, orphans requeued once connected, and a
    detached transport is a connection error, not a crash."""

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # connected: it pinged Redis
        self._requeue_orphans()

    def _requeue_orphans(self) -> None:
        with _orphans_lock:
            # A forked child inherits a copy of the list: only the process that
            # popped a message pushes it back.
            mine = [o for o in _orphans if o.pid == os.getpid()]
            if not mine:
                return
            try:
                with self.conn_or_acquire() as client:
                    pipe = client.pipeline()
                    for orphan in mine:
                        self._do_restore_message(
                            orphan.payload, orphan.exchange, orphan.routing_key, pipe
                        )
                    pipe.execute()
            except self.connection_errors as exc:
                logger.warning("could not requeue %d orphan(s) yet: %s", len(mine), exc)
                return  # kept for the next channel
            _orphans[:] = [o for o in _orphans if o.pid != os.getpid()]
        for orphan in mine:
            logger.warning(
                "requeued task %s, received as the broker was lost", _task_id(orphan.payload)
            )

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError(
                "the broker connection of this channel is already closed"
            )
        return super()._connparams(asynchronous=asynchronous)


def install() -> None:
    """Make kombu's Redis transport open :class:`Channel` (idempotent)."""
    kombu_redis.Transport.Channel = Channel
