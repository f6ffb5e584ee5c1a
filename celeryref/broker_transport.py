"""kombu's Redis channel with one reconnect crash of Celery 5.7 fixed (finding F12).

When a worker loses the broker, Celery 5.7 first ``collect()``s the connection (close
its channel, then detach the transport: ``transport.client = None``) and then
``close()``s it. If Redis is down, the first channel close fails early (draining the
pending ``BRPOP``), so the second one runs the rest: it requeues the channel's
unacknowledged messages through a new connection pool built from the detached
transport's settings, and ``None.hostname`` raises ``AttributeError``. That is not a
connection error, nobody catches it, the worker dies with "Unrecoverable error" and
only Docker's restart policy brings it back (seen in the fault suite's Redis restart
drill, docs/RELIABILITY.md scenario 8).

Here a channel whose transport is already detached raises a connection error
instead. Celery ignores connection errors while it tears a connection down, so the
worker reconnects by itself. The messages it could not requeue are still in Redis's
``unacked`` hash and come back with the visibility-timeout sweep, as for any worker
that loses the broker.

kombu chooses the channel class through ``Transport.Channel``; :func:`install` sets it
on kombu's Redis transport (not a transport of our own: broker URLs, Flower and the
worker banner keep the plain ``redis://`` scheme). :mod:`celeryref.celery_app` installs
it, so every process that builds the app has it.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; a detached transport is a connection error, not a crash."""

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError(
                "the broker connection of this channel is already closed"
            )
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]


def install() -> None:
    """Make kombu's Redis transport open :class:`Channel` (idempotent)."""
    kombu_redis.Transport.Channel = Channel
