"""A worker consumer that sends its task events in batches, not one publish per event.

Celery 5.7 already buffers task events in the worker (``EventDispatcher`` with
``buffer_group=["task"]``) and publishes a buffer as one ``task.multi`` message,
which event receivers (Flower, ``celery events``) unpack. But
``Consumer.on_send_event_buffered`` asks the event loop to flush *at once*
(``hub.call_soon``), so the buffer holds one event whenever it is flushed: a
short task costs three synchronous ``PUBLISH`` round trips (received, started,
succeeded) in the consumer's event loop, which waits for each reply while no
message is fetched or acknowledged. Measured under a backlog of short tasks
(py-spy on the consumer, docs/PERFORMANCE.md): 39 % of its wall time.

Here the flush runs ``TASK_EVENTS_FLUSH_INTERVAL`` seconds after the first buffered
event (or when the buffer reaches the dispatcher's ``buffer_limit``, as before), so
one publish carries the events of many tasks. Receivers see an event at most that
much later; events stay best-effort as in Celery (lost with a lost connection).
``TASK_EVENTS_FLUSH_INTERVAL=0`` is Celery's own behaviour.
"""

from __future__ import annotations

import logging

from celery.worker.consumer import Consumer

from celeryref.settings import settings

logger = logging.getLogger(__name__)


class BatchingConsumer(Consumer):
    """Celery's consumer, flushing buffered task events once per flush interval."""

    _events_flush_pending = False

    def on_send_event_buffered(self) -> None:
        """Called for every buffered event, from the loop or a pool thread."""
        if settings.task_events_flush_interval <= 0:
            super().on_send_event_buffered()
            return
        if self.hub is None or self._events_flush_pending:
            return
        self._events_flush_pending = True
        # call_soon is thread-safe; the timer is the loop's own: schedule from there.
        self.hub.call_soon(self._schedule_events_flush)

    def _schedule_events_flush(self) -> None:
        self.hub.call_later(settings.task_events_flush_interval, self._flush_buffered_events)

    def _flush_buffered_events(self) -> None:
        self._events_flush_pending = False
        try:
            self._flush_events()
        except Exception as exc:  # events are best-effort; the loop must go on
            logger.warning("task events not sent (%r)", exc)
