"""The end of a task that failed for good: its dead letter, and the operators' alert.

:class:`celeryref.reliability.task_base.BaseTask` calls these when a failure is permanent, a
transient one is out of retries, a message loops through redeliveries, or a hard
time limit killed the process. Nothing is dropped on the way: when Postgres cannot
take the entry it is kept in Redis (:data:`UNRECORDED_KEY`, drained into Postgres by
:mod:`celeryref.reliability.dead_letters.unrecorded`); when Redis cannot take it either,
:class:`NotStored` (carrying the task's own error) tells the caller to keep the message.
A failed alert is logged, never raised over the task's own error.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from celeryref import queues
from celeryref.errors import Classification
from celeryref.reliability import idempotency
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.reliability.dead_letters import unrecorded

logger = logging.getLogger("celeryref.tasks")

#: Task that delivers operator alerts (it must not alert about itself).
NOTIFY_TASK = "celeryref.tasks.priority.notify_operators"
#: Redis list holding dead letters that could not be written to Postgres.
UNRECORDED_KEY = unrecorded.UNRECORDED_KEY


class NotStored(Exception):
    """Neither Postgres nor Redis took the dead letter of ``cause`` (the task's own error):
    its message must not be acknowledged."""

    def __init__(self, cause: BaseException, postgres: BaseException, redis: BaseException):
        super().__init__(
            f"dead letter of {type(cause).__name__}: {cause} not stored "
            f"(Postgres: {postgres!r}; Redis: {redis!r})"
        )
        self.cause = cause


def dead_letter(
    task: Task,
    args: Any,
    kwargs: Any,
    exc: BaseException,
    tb: str | None,
    classification: Classification,
    task_id: str | None = None,
) -> None:
    """Store the running request of ``task`` as a dead letter, then alert if it asks to.

    Raises :class:`NotStored` when neither Postgres nor Redis took it (no alert then:
    the message is kept and the dead letter tried again on its next delivery).
    """
    request = task.request
    task_id = task_id or request.id
    delivery_info = getattr(request, "delivery_info", None) or {}
    headers = {
        key: getattr(request, key)
        for key in (idempotency.HEADER, dead_letters.REPLAY_HEADER)
        if getattr(request, key, None) is not None
    }
    fields: dict[str, Any] = {
        "task_id": task_id,
        "task_name": task.name,
        "queue": delivery_info.get("routing_key"),
        "args": list(args or []),
        "kwargs": dict(kwargs or {}),
        "headers": headers,
        "exc": exc,
        "traceback": tb,
        "classification": classification,
        "retries": request.retries or 0,
    }
    try:
        entry_id: int | None = dead_letters.record(**fields)
        logger.error("task %s[%s] dead-lettered as #%s: %s", task.name, task_id, entry_id, exc)
    except Exception as postgres_error:
        # Postgres unavailable: keep the entry in Redis rather than lose it.
        entry_id = None
        del fields["exc"], fields["classification"]
        fields.update(
            exception_type=type(exc).__name__,
            exception=str(exc),
            category=classification.category,
            severity=classification.severity.name.lower(),
        )
        try:
            unrecorded.keep(fields)
        except Exception as redis_error:
            raise NotStored(exc, postgres_error, redis_error) from exc
        logger.error(
            "dead-letter store unavailable (%r); kept %s[%s] in Redis: %s",
            postgres_error,
            task.name,
            task_id,
            exc,
        )
    if getattr(task, "alert_on_dead_letter", True):
        body = f"{type(exc).__name__}: {exc}"
        alert(task, f"{task.name} dead-lettered", body, classification, entry_id, task_id)


def alert(
    task: Task,
    title: str,
    body: str,
    classification: Classification,
    entry_id: int | None,
    task_id: str | None = None,
) -> None:
    """Enqueue an operator notification on the ``priority`` queue at top priority."""
    try:
        task.app.send_task(
            NOTIFY_TASK,
            kwargs={
                "title": title,
                "body": body,
                "severity": classification.severity.name.lower(),
                "source": task.name,
                "details": {
                    "task_id": task_id or task.request.id,
                    "category": classification.category,
                    "dead_letter_id": entry_id,
                },
            },
            queue=queues.PRIORITY,
            priority=queues.PRIORITY_TOP,
        )
    except Exception:
        logger.exception("could not enqueue the operator alert for %s", task.name)
