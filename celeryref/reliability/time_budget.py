"""Time limits of a task on a thread: deadlines for its I/O calls, and one outcome.

Celery 5.7's threads pool ignores ``time_limit``/``soft_time_limit`` (F24), and a
thread cannot be killed. :mod:`celeryref.upstream.thread_pool` gives each task a
:class:`Budget` on the thread that runs it; then:

- I/O calls take their timeouts from :func:`call_timeout` (never more than the time
  left before the soft limit), which raises ``SoftTimeLimitExceeded`` between calls
  once the soft limit has passed: the cooperative soft limit;
- at the hard limit the pool's watchdog reports the task failed with Celery's own
  ``TimeLimitExceeded``, unless the task is already reporting its outcome. Exactly
  one side reports: :meth:`Budget.settle` (the task) and :meth:`Budget.expire` (the
  watchdog) decide under one lock;
- the thread, left to finish in the background, finds its budget expired when it
  returns, and :func:`settle` drops its outcome (``Ignore``: no result stored, no
  retry published, no callbacks run).

Outside the thread pool (prefork kills at the hard limit) no budget is registered and
every function here is a no-op.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

from celery.exceptions import Ignore, SoftTimeLimitExceeded

State = Literal["running", "reporting", "expired"]


class Budget:
    """The deadlines (``time.monotonic()`` seconds) of one run of one task."""

    def __init__(self, soft_limit: float | None, hard_limit: float | None) -> None:
        now = time.monotonic()
        #: Seconds after start when I/O calls stop being made.
        self.soft_at = now + soft_limit if soft_limit else None
        #: Seconds after start when the watchdog reports ``TimeLimitExceeded``.
        self.hard_at = now + hard_limit if hard_limit else None
        self._state: State = "running"
        self._lock = threading.Lock()

    @property
    def state(self) -> State:
        return self._state

    def remaining(self) -> float | None:
        """Seconds left before the soft limit (else the hard one); ``None``: unbounded."""
        ends = [t for t in (self.soft_at, self.hard_at) if t is not None]
        return min(ends) - time.monotonic() if ends else None

    def settle(self) -> bool:
        """Claim the right to report the outcome; ``False`` once the watchdog has."""
        with self._lock:
            if self._state == "expired":
                return False
            self._state = "reporting"
            return True

    def expire(self) -> bool:
        """Claim the right to report ``TimeLimitExceeded``; ``False`` once the task has."""
        with self._lock:
            if self._state != "running":
                return False
            self._state = "expired"
            return True


_local = threading.local()


def begin(budget: Budget) -> None:
    """Make ``budget`` the current thread's (the pool, when a task starts)."""
    _local.budget = budget


def end() -> None:
    """The current thread runs no task any more."""
    _local.budget = None


def current() -> Budget | None:
    """The budget of the task the current thread runs, if the pool gave it one."""
    budget: Budget | None = getattr(_local, "budget", None)
    return budget


def call_timeout(default: float) -> float:
    """Seconds one I/O call may take: ``default``, less if the soft limit is nearer.

    Raises ``SoftTimeLimitExceeded`` (as Celery's soft limit does) when it has passed.
    """
    budget = current()
    left = None if budget is None else budget.remaining()
    if left is None:
        return default
    if left <= 0:
        raise SoftTimeLimitExceeded("soft time limit exceeded before an I/O call")
    return min(default, left)


def settle() -> None:
    """Before a task reports its outcome: raise ``Ignore`` if the watchdog already
    reported ``TimeLimitExceeded`` for it (its result must not overwrite that)."""
    budget = current()
    if budget is not None and not budget.settle():
        raise Ignore("hard time limit already reported by the watchdog")
