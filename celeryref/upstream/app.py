"""Celery's app class with ``send_task`` made safe for Redis (priority and delay).

Written against Celery 5.7 (see :data:`celeryref.upstream.PATCHED_FOR`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from celeryref.reliability import delivery_guard


class App(Celery):
    """Celery whose ``send_task`` refuses delays the broker cannot hold and applies
    ``task_default_priority`` to by-name sends too.

    Every publish goes through ``send_task``: ``Task.apply_async``, canvas
    signatures, retries, the API's by-name submissions and dead-letter replays.
    Celery applies ``task_default_priority`` only in ``Task.apply_async``; a by-name
    send without a priority would land on Redis priority 0, the *highest*, and
    overtake all normal work.
    """

    def send_task(
        self,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        countdown: float | None = None,
        eta: Any = None,
        **options: Any,
    ) -> Any:
        delivery_guard.check_delay(countdown, eta)
        if options.get("priority") is None:
            options["priority"] = self.conf.task_default_priority
        return super().send_task(name, args, kwargs, countdown=countdown, eta=eta, **options)
