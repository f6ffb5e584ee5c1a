"""The consumer step that writes the liveness files (:mod:`celeryref.observability.liveness`).

Every :data:`~celeryref.observability.liveness.BEAT_SECONDS`, on the consumer's event
loop (the worker's timer, as Celery's own ``Heart`` step uses it): ``PING`` Redis on
a pooled connection of the consumer's channel (kombu 5.7's ``conn_or_acquire``, as its
acks do), then write one file per queue the task consumer consumes.
A loop that is stuck, a Redis that does not answer (the ``PING`` raises after the
socket timeout) or a queue no longer consumed leaves no fresh file, so the container's
healthcheck fails. Stopping the step (shutdown, or the restart after a lost
connection) removes the files at once.

Registered in :func:`celeryref.celery_app.create_app` with
``app.steps["consumer"].add``, Celery's documented extension point (Celery 5.7).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from celeryref.observability import liveness

logger = logging.getLogger(__name__)


class WorkerLiveness(bootsteps.StartStopStep):
    """Writes the liveness files while the consumer runs."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None
        self.written: set[str] = set()

    def start(self, c: Any) -> None:
        self.beat(c)
        self.timer_ref = c.timer.call_repeatedly(liveness.BEAT_SECONDS, self.beat, (c,))

    def stop(self, c: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        liveness.forget(self.written)
        self.written = set()

    shutdown = stop

    def beat(self, c: Any) -> None:
        """PING Redis, then prove each consumed queue; on failure prove nothing."""
        try:
            # A pooled connection, as kombu's own acks use (``conn_or_acquire``): the
            # channel's ``client`` holds the one connection the event loop waits on
            # (BRPOP); a PING there would hand its reply to the wrong reader.
            with c.connection.default_channel.conn_or_acquire() as client:
                client.ping()
            consumed = {q.name for q in c.task_consumer.queues}
            liveness.write(consumed)
            liveness.forget(self.written - consumed)
        except Exception as exc:  # a failed beat must never stop the consumer
            logger.warning("worker liveness not written: %r", exc)
            liveness.forget(self.written)
            self.written = set()
            return
        self.written = consumed
