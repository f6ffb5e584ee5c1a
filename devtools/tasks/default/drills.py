"""Fault drills: small tasks that make crashes, redeliveries and duplicates observable.

The fault suite (``tests/stack/test_faults_*.py``, results in ``docs/RELIABILITY.md``)
sends these to a real deployment and then kills, stops or restarts containers
around them. Every execution that reaches a task body writes a row to
``drill_runs`` and every side effect a row to ``drill_effects`` (migration
``0005_drills.sql``), so "ran again", "ran twice" and "side effect twice" are
counts, not guesses.

Every drill refuses to run (a permanent error, dead-lettered like any other)
unless the worker's environment has ``FAULT_INJECTION=1``: a normal deployment
never crashes a process because someone put a drill on its queue. The tasks are
not in the API catalog either; only a client with broker access can send them.

The module lives under ``celeryref.tasks.default``, so its tasks are routed to
the ``default`` queue; a drill may be sent to any other queue explicitly
(``send_task(..., queue="io_intensive")``) because every worker imports every
task module.
"""

from __future__ import annotations

import os
import time
from typing import Any, NoReturn

from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.errors import InvalidArguments, PermanentError, UpstreamUnavailable
from celeryref.reliability.delivery_guard import ETA_MARGIN_SECONDS
from celeryref.reliability.retry import RetryPolicy
from celeryref.settings import settings

#: Exit status of a pool process killed by :func:`crash_process` (recognisable in logs).
CRASH_EXIT_CODE = 86
#: Longest hold (seconds) a drill accepts, so a typo cannot pin a process for hours.
MAX_HOLD_SECONDS = 600.0

#: Retries that outlast a Postgres restart (about 1 minute in all) while every
#: countdown stays far below a shortened visibility timeout (see delivery_guard).
OUTAGE_RETRIES = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=8.0)
#: Quick retries for the transient poison drill: dead-lettered within seconds.
QUICK_RETRIES = RetryPolicy(max_retries=3, base_delay=0.2, max_delay=1.0)
#: One retry whose backoff is longer than the delay the delivery guard accepts
#: (visibility timeout minus its margin), whatever the deployment's timeout.
PAST_VISIBILITY_DELAY = float(settings.broker_visibility_timeout - ETA_MARGIN_SECONDS + 15)
PAST_VISIBILITY_RETRIES = RetryPolicy(
    max_retries=1, base_delay=PAST_VISIBILITY_DELAY, max_delay=PAST_VISIBILITY_DELAY, jitter=False
)


def require_fault_injection(name: str) -> None:
    """Refuse to run drill ``name`` unless ``FAULT_INJECTION=1``."""
    if not settings.fault_injection:
        raise PermanentError(
            f"{name} is a fault drill and runs only where FAULT_INJECTION=1 "
            "(this worker has fault injection disabled)"
        )


def _hold_seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArguments(f"hold must be a number of seconds, got {value!r}")
    if not 0 <= value <= MAX_HOLD_SECONDS:
        raise InvalidArguments(f"hold must be within 0..{MAX_HOLD_SECONDS:.0f} s, got {value}")
    return float(value)


def _where(request: Any) -> tuple[str | None, str | None]:
    """(worker node name, queue) of the current execution."""
    delivery = getattr(request, "delivery_info", None) or {}
    return getattr(request, "hostname", None), delivery.get("routing_key")


def record_run(key: str, request: Any) -> None:
    """Write one ``drill_runs`` row: this execution started (committed at once)."""
    worker, queue = _where(request)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO drill_runs (key, task_id, worker, pid, queue) VALUES (%s, %s, %s, %s, %s)",
            (key, str(request.id), worker, os.getpid(), queue),
        )


def record_effect(key: str, task_id: str, request: Any = None) -> None:
    """Write one ``drill_effects`` row: the side effect the suite counts."""
    worker, queue = _where(request) if request is not None else (None, None)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO drill_effects (key, task_id, worker, queue) VALUES (%s, %s, %s, %s)",
            (key, task_id, worker, queue),
        )


@app.task(bind=True, idempotent=True, retry_policy=OUTAGE_RETRIES)
def record_event(self: Any, key: str, hold_seconds: float = 0.0) -> dict[str, Any]:
    """Idempotent side effect: record the run, hold ``hold_seconds``, then record the effect.

    The hold is the window in which the suite kills the process or container; a
    redelivered run records a second ``drill_runs`` row. The effect row and the
    completion of the idempotency key (task name + arguments) commit in ONE
    transaction, the pattern :mod:`celeryref.reliability.idempotency` recommends: a crash or
    a database outage before the commit leaves neither (the retry or redelivery
    records the effect), after it leaves both (a redelivery gets the stored
    result), so the effect lands exactly once per key.
    """
    require_fault_injection("record_event")
    hold = _hold_seconds(hold_seconds)
    record_run(key, self.request)
    if hold:
        time.sleep(hold)
    result = {"key": key, "task_id": self.request.id, "worker": self.request.hostname}
    worker, queue = _where(self.request)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO drill_effects (key, task_id, worker, queue) VALUES (%s, %s, %s, %s)",
            (key, str(self.request.id), worker, queue),
        )
        self.complete_idempotency_key(cur, result)  # in this transaction
    return result


@app.task(bind=True)
def sleep_for(self: Any, seconds: float, key: str = "") -> dict[str, Any]:
    """Record the run (when ``key`` is given) and sleep ``seconds``, ignoring soft limits.

    ``SoftTimeLimitExceeded`` is swallowed, so only the hard time limit ends a
    sleep longer than the limits: the drill for "killed at the hard limit".
    """
    require_fault_injection("sleep_for")
    hold = _hold_seconds(seconds)
    if key:
        record_run(key, self.request)
    deadline = time.monotonic() + hold
    while (left := deadline - time.monotonic()) > 0:
        try:
            time.sleep(min(left, 1.0))
        except Exception:  # noqa: S112 - SoftTimeLimitExceeded: keep sleeping on purpose
            continue
    return {"slept": hold, "worker": self.request.hostname}


@app.task(bind=True)
def crash_process(self: Any, key: str = "") -> NoReturn:
    """Kill the pool process running this task (``os._exit``), every time it is delivered.

    The drill for "a message that kills every worker that runs it": with
    ``task_reject_on_worker_lost`` it comes back until the delivery guard refuses it.
    """
    require_fault_injection("crash_process")
    if key:
        record_run(key, self.request)
    os._exit(CRASH_EXIT_CODE)


@app.task(bind=True, idempotent=True, retry_policy=QUICK_RETRIES)
def require_fixture(self: Any, key: str, transient: bool = False) -> dict[str, Any]:
    """A poison message until its fix exists: fail unless ``drill_fixtures`` holds ``key``.

    ``transient=False`` fails permanently (dead-lettered at the first attempt);
    ``transient=True`` fails as an unavailable upstream (retried by
    :data:`QUICK_RETRIES`, then dead-lettered). After the fix, a replay records
    the effect once.
    """
    require_fault_injection("require_fixture")
    record_run(key, self.request)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM drill_fixtures WHERE key = %s", (key,))
        fixed = cur.fetchone() is not None
    if not fixed:
        message = f"drill fixture {key!r} does not exist"
        raise UpstreamUnavailable(message) if transient else InvalidArguments(message)
    record_effect(key, str(self.request.id), self.request)
    return {"key": key, "fixed": True}


@app.task(bind=True, retry_policy=PAST_VISIBILITY_RETRIES)
def retry_past_visibility(self: Any, key: str) -> None:
    """Fail transiently once; the policy's backoff exceeds what the delivery guard accepts.

    The drill for "a retry the broker cannot hold": the base class asks for a
    retry with a countdown beyond ``BROKER_VISIBILITY_TIMEOUT`` minus the margin.
    """
    require_fault_injection("retry_past_visibility")
    record_run(key, self.request)
    raise UpstreamUnavailable(f"drill {key!r} fails transiently on purpose")


@app.task(bind=True)
def chord_part(self: Any, key: str, fail: bool = False) -> str:
    """A chord header task: record its effect and return ``key``, or fail permanently."""
    require_fault_injection("chord_part")
    record_run(key, self.request)
    if fail:
        raise InvalidArguments(f"chord part {key!r} fails on purpose")
    record_effect(key, str(self.request.id), self.request)
    return key


@app.task(bind=True)
def chord_body(self: Any, results: list[Any], key: str) -> int:
    """A chord body: record one effect under ``key``; return how many results it joined."""
    require_fault_injection("chord_body")
    record_effect(key, str(self.request.id), self.request)
    return len(results)


@app.task
def chord_failed(request: Any, exc: BaseException, traceback: Any, key: str) -> None:
    """Error callback of a chord body: record one effect under ``key``.

    Celery calls an error callback that takes ``(request, exc, traceback)`` in the
    process that saw the failure, so it runs exactly where the chord failed.
    """
    require_fault_injection("chord_failed")
    record_effect(key, str(getattr(request, "id", None) or "<unknown>"))
