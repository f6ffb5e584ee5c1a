"""The sweep of the durable scheduler (F23): publish deferred tasks once they are due."""

from __future__ import annotations

from celeryref.celery_app import app
from celeryref.reliability import deferred


def publish(row: deferred.Deferred) -> None:
    """Send ``row`` now, under its original task id (the caller's ``AsyncResult``)."""
    app.send_task(row.task_name, row.args, row.kwargs, task_id=row.task_id, **row.options)


@app.task
def publish_deferred_tasks() -> int:
    """Publish every deferred task that is due (beat, every ``DEFERRED_SWEEP_SECONDS``);
    return how many."""
    return deferred.publish_due(publish)
