"""A worker consumer that records the messages Celery refuses before any task runs.

Celery already refuses them safely: a body in a content type outside
``accept_content`` (pickle, yaml, ...) is never deserialized, and a message for a
task this worker does not know is never executed. It only logs them, though; this
consumer also writes each one to the dead-letter store, so a poisoned or
misrouted message is visible to operators, never a silent drop. The raw body is
stored as a short hex prefix for inspection, never decoded.

The record is written BEFORE Celery's hook acknowledges (or rejects) the message
(F20: Celery's hooks ack first, so a record that failed afterwards was only a log
line). Postgres gets :data:`RECORD_TIMEOUT_SECONDS` to connect and as much to insert,
on a connection of its own, so a hanging Postgres cannot stall the consumer; failing
that the entry is kept in Redis (:mod:`celeryref.reliability.dead_letters.unrecorded`,
drained into Postgres later). Only when neither took it is the message put back at
the end of its queue (after :data:`REQUEUE_PAUSE_SECONDS`), to be recorded on a later
delivery: the evidence is kept in the message rather than lost. Worst case per
refused message: 2 x the record timeout, the Redis socket timeout, and the pause.

Enabled by ``worker_consumer = "celeryref.upstream.consumer:RecordingConsumer"``, which
also batches task events (:class:`~celeryref.upstream.events.BatchingConsumer`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg2

from celeryref.errors import Classification, Severity
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.reliability.dead_letters import unrecorded
from celeryref.settings import settings
from celeryref.upstream.events import BatchingConsumer

logger = logging.getLogger(__name__)

#: Bytes of a refused body kept (hex) in the dead-letter entry.
BODY_PREFIX_BYTES = 256
#: Seconds Postgres gets to accept the recording connection, and again to run the
#: insert (``statement_timeout``, which also bounds a wait for a lock). libpq's minimum.
RECORD_TIMEOUT_SECONDS = 2
#: Seconds the consumer waits before requeueing a message neither store took, so an
#: outage of both does not turn into a tight redelivery loop.
REQUEUE_PAUSE_SECONDS = 1.0


def _fields(
    message: Any, category: str, exc: BaseException, task_name: str | None
) -> dict[str, Any]:
    """The dead-letter fields (:func:`~celeryref.reliability.dead_letters.store.record`)."""
    headers = dict(message.headers or {})
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return {
        "task_id": str(headers.get("id") or "<no id>"),
        "task_name": str(task_name or headers.get("task") or "<unknown>"),
        "queue": (message.delivery_info or {}).get("routing_key"),
        "args": [],
        "kwargs": {},
        "headers": {
            "content_type": message.content_type,
            "content_encoding": message.content_encoding,
            "body_bytes": len(body),
            "body_prefix_hex": body[:BODY_PREFIX_BYTES].hex(),
        },
        "exc": exc,
        "traceback": None,
        "classification": Classification(False, Severity.HIGH, category),
        "retries": 0,
    }


def _to_postgres(fields: dict[str, Any]) -> int:
    conn = psycopg2.connect(
        settings.database_dsn,
        connect_timeout=RECORD_TIMEOUT_SECONDS,
        options=f"-c statement_timeout={RECORD_TIMEOUT_SECONDS * 1000}",
        application_name=f"celeryref-consumer:{os.getpid()}",
    )
    try:
        with conn:  # commit, or roll back on error
            return dead_letters.record(**fields, conn=conn)
    finally:
        conn.close()


def _to_redis(fields: dict[str, Any]) -> None:
    exc: BaseException = fields["exc"]
    classification: Classification = fields["classification"]
    entry = {k: v for k, v in fields.items() if k not in ("exc", "classification")}
    entry.update(
        exception_type=type(exc).__name__,
        exception=str(exc),
        category=classification.category,
        severity=classification.severity.name.lower(),
    )
    unrecorded.keep(entry)


def record(message: Any, category: str, exc: BaseException, task_name: str | None = None) -> bool:
    """Record a refused message (Postgres, else Redis); ``False`` when neither took it."""
    fields = _fields(message, category, exc, task_name)
    label = f"{fields['task_name']}[{fields['task_id']}] ({category})"
    try:
        entry_id = _to_postgres(fields)
    except Exception as postgres_error:
        try:
            _to_redis(fields)
        except Exception as redis_error:
            logger.error(
                "refused message %s NOT recorded (Postgres: %r; Redis: %r); requeued",
                label,
                postgres_error,
                redis_error,
            )
            return False
        logger.error("refused message %s kept in Redis (Postgres: %r)", label, postgres_error)
        return True
    logger.error("refused message %s recorded as dead letter #%s", label, entry_id)
    return True


class RecordingConsumer(BatchingConsumer):
    """Celery's consumer, plus a dead-letter record of every refused message, written
    before the message is acknowledged (and task events sent in batches:
    :mod:`celeryref.upstream.events`)."""

    def _refuse(
        self, message: Any, category: str, exc: BaseException, celerys_hook: Callable[[], None]
    ) -> None:
        """Run Celery's hook (which acks or rejects) once the message is recorded;
        requeue it instead when it could not be."""
        if record(message, category, exc):
            celerys_hook()
            return
        time.sleep(REQUEUE_PAUSE_SECONDS)
        message.reject_log_error(logger, self.connection_errors, requeue=True)

    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        hook = partial(super().on_decode_error, message, exc)
        self._refuse(message, "undecodable_message", exc, hook)

    def on_unknown_task(self, body: Any, message: Any, exc: BaseException) -> None:
        hook = partial(super().on_unknown_task, body, message, exc)
        self._refuse(message, "unknown_task", exc, hook)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        hook = partial(super().on_unknown_message, body, message)
        self._refuse(message, "unknown_message", ValueError("not a Celery task message"), hook)

    def on_invalid_task(self, body: Any, message: Any, exc: BaseException) -> None:
        hook = partial(super().on_invalid_task, body, message, exc)
        self._refuse(message, "invalid_task_message", exc, hook)
