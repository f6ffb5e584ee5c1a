"""The baseline: the benchmark tasks on a Celery app with plain defaults.

Same image, same task functions (:mod:`.work`, registered under the deployment's
names), same Redis server, but none of the deployment's configuration: no routes, no
``BaseTask``, no events, prefork with concurrency = cores, prefetch multiplier 4,
acknowledgement before the task runs, results on. Only the broker and backend
URLs are set (JSON is already Celery's default serializer). Its worker consumes
Celery's default queue ``celery``, which no deployment worker reads.

It uses its own Redis databases (:data:`BROKER_DB`, :data:`RESULT_DB`): kombu
stores exchange bindings as ``routing key<sep>pattern<sep>queue`` and the
deployment sets ``sep`` to ``:`` while kombu's default is ``\x06\x16``; two apps
with different separators on one database break each other's remote control
(``ValueError: not enough values to unpack`` on every broadcast, so every
``inspect ping`` healthcheck fails).

Only the variants change a default, from the environment: ``BENCH_ACKS_LATE=1``
(``task_acks_late``), ``BENCH_PREFETCH=N`` (``worker_prefetch_multiplier``),
``BENCH_DISABLE_PREFETCH=1`` (``worker_disable_prefetch``, Celery 5.5+, Redis only: a
process fetches a message only when it is free), ``BENCH_TRACK_STARTED=1``
(``task_track_started``) and ``BENCH_QUEUE`` (``task_default_queue``: a second
baseline worker, :data:`GUARDED`, and the app that sends to it).

Run: ``celery -A bench.baseline worker``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from celery import Celery

from bench import work
from celeryref.settings import Settings, settings

#: Celery's default queue: the only one the baseline worker consumes.
QUEUE = "celery"
#: The variant with the spec's delivery guarantees (F1: ``acks_late``, prefetch 1, STARTED
#: stored) and nothing else of the deployment: what those guarantees cost plain Celery.
GUARDED: dict[str, str] = {
    "BENCH_ACKS_LATE": "1",
    "BENCH_PREFETCH": "1",
    "BENCH_TRACK_STARTED": "1",
    "BENCH_QUEUE": "celery_guarded",
}
#: Redis database of the baseline's broker (the deployment uses 0, 1, 2).
BROKER_DB = 4
#: Redis database of the baseline's results.
RESULT_DB = 5

#: (task name, function, task options): the deployment's names, the same bodies.
TASKS: tuple[tuple[str, Callable[..., Any], dict[str, Any]], ...] = (
    ("bench.tasks.default.noop", work.noop, {"ignore_result": True}),
    ("bench.tasks.default.stamp", work.stamp, {}),
    ("bench.tasks.default.sleep_stamp", work.sleep_stamp, {}),
    ("bench.tasks.default.fan_in", work.fan_in, {}),
    ("bench.tasks.cpu_intensive.burn_cpu", work.burn_cpu, {}),
    ("bench.tasks.priority.ping", work.stamp, {}),
)


def create_baseline(s: Settings = settings, env: Mapping[str, str] | None = None) -> Celery:
    """A default Celery app on ``s``'s Redis with the benchmark tasks registered;
    ``env`` (default ``os.environ``) may select a variant."""
    e = os.environ if env is None else env
    own = s.model_copy(update={"redis_broker_db": BROKER_DB, "redis_result_db": RESULT_DB})
    celery = Celery("baseline", broker=own.broker_url, backend=own.result_backend_url)
    if e.get("BENCH_ACKS_LATE", "") == "1":
        celery.conf.task_acks_late = True
    if e.get("BENCH_PREFETCH", ""):
        celery.conf.worker_prefetch_multiplier = int(e["BENCH_PREFETCH"])
    if e.get("BENCH_DISABLE_PREFETCH", "") == "1":
        celery.conf.worker_disable_prefetch = True
    if e.get("BENCH_TRACK_STARTED", "") == "1":
        celery.conf.task_track_started = True
    if e.get("BENCH_QUEUE", ""):
        celery.conf.task_default_queue = e["BENCH_QUEUE"]
    for name, function, options in TASKS:
        celery.task(name=name, **options)(function)
    return celery


app = create_baseline()
