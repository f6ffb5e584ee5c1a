"""Celery's threads pool with time limits (F24): a watchdog fails a task at its hard limit.

Celery 5.7's ``celery.concurrency.thread.TaskPool`` drops the ``timeout`` and
``soft_timeout`` every request passes to the pool: a task with ``time_limit=1`` ran
3 s and succeeded. Prefork enforces a hard limit by killing the child process; a
thread cannot be killed, and raising an exception into it asynchronously
(``PyThreadState_SetAsyncExc``) is not safe either: it lands at an arbitrary
bytecode, possibly inside the ``finally`` that returns a Postgres connection to the
pool or releases a lock, in a process that keeps serving the other threads, and it
cannot interrupt a blocking socket call at all. So here:

- each task runs with a :class:`~celeryref.reliability.time_budget.Budget`; the
  ``io_intensive`` tasks bound every I/O call by it (the soft limit, cooperative);
- a watchdog thread reports a task still running at its hard limit through Celery's
  own ``Request.on_timeout``: ``TimeLimitExceeded`` stored, ``on_failure`` (the dead
  letter) run, the message acknowledged, as for a prefork task;
- the thread is left to finish in the background (its I/O calls have timeouts) and
  its outcome is dropped (:func:`celeryref.reliability.time_budget.settle`). It holds
  its pool slot until then; :meth:`TaskPool._get_info` shows how many are abandoned.

Run it with ``--pool custom`` and
``CELERY_CUSTOM_WORKER_POOL=celeryref.upstream.thread_pool:TaskPool`` (Celery's hook for
an out-of-tree pool; docker-compose.yml ``worker-io``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.concurrency import thread
from celery.concurrency.base import apply_target

from celeryref.reliability import time_budget

logger = logging.getLogger(__name__)

Action = Callable[[], None]


class Watchdog:
    """One daemon thread running each action at its deadline (``time.monotonic()``)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Action]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="time-limit-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def at(self, when: float, action: Action) -> None:
        with self._wake:
            heapq.heappush(self._due, (when, next(self._order), action))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopped:
                    return
                _, _, action = heapq.heappop(self._due)
            try:
                action()
            except Exception:  # one failed report must not stop every later one
                logger.exception("time limit action failed")


class _Job:
    """One task on the pool: its budget and the request's timeout callback."""

    def __init__(self, timeout_callback: Callable[..., Any] | None) -> None:
        self.timeout_callback = timeout_callback
        self.budget: time_budget.Budget | None = None

    def soft_limit(self, seconds: float) -> None:
        if self.budget is not None and self.budget.state == "running" and self.timeout_callback:
            self.timeout_callback(True, seconds)  # Celery's warning; calls now stop

    def hard_limit(self, seconds: float, pool: TaskPool) -> None:
        if self.budget is None or not self.budget.expire():
            return
        pool.abandoned += 1
        if self.timeout_callback is not None:
            self.timeout_callback(False, seconds)  # TimeLimitExceeded, on_failure, ack
        self.timeout_callback = None


class ApplyResult(thread.ApplyResult):
    """Celery's thread job handle, which Celery's ``Request.cancel`` can call."""

    def terminate(self, signal: Any = None) -> None:
        """Celery's cancel: a job not started yet never starts; a running thread cannot be
        stopped and finishes (see :meth:`TaskPool.terminate_job`)."""
        self.f.cancel()


class TaskPool(thread.TaskPool):
    """Celery's threads pool, enforcing ``time_limit`` (and bounding I/O by
    ``soft_time_limit``) through :mod:`celeryref.reliability.time_budget`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watchdog = Watchdog()
        #: Tasks reported failed at their hard limit whose thread had not returned.
        self.abandoned = 0

    def on_start(self) -> None:
        self.watchdog.start()
        super().on_start()

    def on_stop(self) -> None:
        self.watchdog.stop()
        super().on_stop()

    def on_apply(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callable[..., Any] | None = None,
        accept_callback: Callable[..., Any] | None = None,
        timeout_callback: Callable[..., Any] | None = None,
        timeout: float | None = None,
        soft_timeout: float | None = None,
        **_: Any,
    ) -> thread.ApplyResult:
        hard = timeout or self.options.get("timeout")
        soft = soft_timeout or self.options.get("soft_timeout")
        if hard and soft and soft >= hard:
            soft = None  # as in prefork: a soft limit past the hard one never fires
        job = _Job(timeout_callback)

        def accepted(*accept_args: Any) -> None:
            job.budget = time_budget.Budget(soft, hard)
            time_budget.begin(job.budget)
            if soft and job.budget.soft_at is not None:
                self.watchdog.at(job.budget.soft_at, lambda: job.soft_limit(soft))
            if hard and job.budget.hard_at is not None:
                self.watchdog.at(job.budget.hard_at, lambda: job.hard_limit(hard, self))
            if accept_callback is not None:
                accept_callback(*accept_args)

        def finished(ret: Any) -> None:
            if job.budget is not None and not job.budget.settle():
                logger.warning("dropping the outcome of a task past its hard time limit")
                return
            if callback is not None:
                callback(ret)

        def run() -> None:
            try:
                apply_target(target, args, kwargs, finished, accepted)
            finally:
                time_budget.end()
                job.timeout_callback = None  # the heap keeps the job until its deadline

        return ApplyResult(self.executor.submit(run))

    def terminate_job(self, pid: int, signal: Any = None) -> None:
        """Celery cancels running tasks at the end of the soft-shutdown window and on a
        lost broker connection, by terminating their pool job. Celery's threads pool raises
        ``NotImplementedError`` there (its job handle has no ``terminate`` either): the
        shutdown crashed, the remaining requests were not cancelled (F26). A thread cannot
        be killed (see the module docstring): it runs on, bounded by its time budget, and
        the shutdown waits for it; its outcome is stored and its message acknowledged as
        usual. A thread still running when the container is killed
        (``stop_grace_period``) leaves its message unacknowledged: it comes back with the
        visibility timeout and runs again (keep ``worker-io``'s hard limits inside the
        grace period, or make such tasks idempotent)."""
        logger.warning(
            "a running task cannot be stopped in a thread; the shutdown waits for it to "
            "finish (signal %s)",
            signal,
        )

    def _get_info(self) -> Any:
        info = super()._get_info()
        info["abandoned-at-hard-limit"] = self.abandoned
        return info
