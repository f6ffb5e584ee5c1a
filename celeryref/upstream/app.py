"""Celery's app class with ``send_task`` made safe for Redis (priority and delay), and
the one-round-trip Redis result backend (:mod:`celeryref.upstream.result_backend`).

Written against Celery 5.7 (see :data:`celeryref.upstream.PATCHED_FOR`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.app import backends
from celery.backends.redis import RedisBackend as CeleryRedisBackend

from celeryref.reliability import deferred, delivery_guard
from celeryref.upstream import result_backend


class App(Celery):
    """Celery whose ``send_task`` applies ``task_default_priority`` to by-name sends too,
    and hands delays the broker cannot hold to the durable scheduler.

    Every publish goes through ``send_task``: ``Task.apply_async``, canvas
    signatures, retries, the API's by-name submissions and dead-letter replays.
    Celery applies ``task_default_priority`` only in ``Task.apply_async``; a by-name
    send without a priority would land on Redis priority 0, the *highest*, and
    overtake all normal work.

    A countdown/ETA that, with the task's hard time limit, outlasts the visibility
    timeout (F23, :func:`celeryref.reliability.delivery_guard.check_delay`) is stored in
    Postgres instead (:mod:`celeryref.reliability.deferred`) and published by the sweep
    when due, with the task id returned here.
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
        if options.get("priority") is None:
            options["priority"] = self.conf.task_default_priority
        time_limit = options.get("time_limit") or self.time_limit_of(name)
        due = delivery_guard.check_delay(countdown, eta, time_limit)
        if due is not None:
            return self.AsyncResult(deferred.defer(name, args, kwargs, options, due))
        return super().send_task(name, args, kwargs, countdown=countdown, eta=eta, **options)

    def time_limit_of(self, name: str) -> float | None:
        """The ``time_limit`` of the task registered as ``name``; ``None``: the global
        ``TASK_TIME_LIMIT`` applies (no limit of its own, or not registered here)."""
        task = self.tasks.get(name)
        limit = getattr(task, "time_limit", None)
        return float(limit) if limit else None

    def _get_backend(self) -> Any:
        """Celery's choice of result backend, with ours in place of its Redis one."""
        backend, url = backends.by_url(self.backend_cls or self.conf.result_backend, self.loader)
        if backend is CeleryRedisBackend:
            backend = result_backend.RedisBackend
        return backend(app=self, url=url)
