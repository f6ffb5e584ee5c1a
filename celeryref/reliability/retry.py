"""Retry policies: exponential backoff with full jitter, capped, per task.

The task base class asks :func:`policy_for` for the task's policy and, for a
transient error, re-queues the task with ``countdown = policy.backoff(attempt)``.
Permanent errors are never retried (see :mod:`celeryref.errors`). This is the
project's only retry mechanism: tasks do not use Celery's ``autoretry_for``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Retries after the first attempt, unless a task's policy says otherwise.
DEFAULT_MAX_RETRIES = 5
#: Seconds of the first backoff step.
DEFAULT_BASE_DELAY = 1.0
#: Upper bound (seconds) of any single backoff.
DEFAULT_MAX_DELAY = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a task retries transient errors."""

    #: Retries after the first attempt (so at most ``max_retries + 1`` runs).
    max_retries: int = DEFAULT_MAX_RETRIES
    #: Seconds of the first backoff step; step ``n`` is ``base_delay * 2**n``.
    base_delay: float = DEFAULT_BASE_DELAY
    #: Cap (seconds) of the exponential step, applied before jitter.
    max_delay: float = DEFAULT_MAX_DELAY
    #: Equal jitter: the wait is uniform in ``[step/2, step]``, so retries from
    #: many workers do not arrive in lockstep but still grow.
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError(f"invalid retry policy: {self}")

    def step(self, retries: int) -> float:
        """The un-jittered backoff (seconds) before retry number ``retries + 1``."""
        return float(min(self.max_delay, self.base_delay * (2 ** min(retries, 32))))

    def backoff(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retries + 1`` (``retries`` done so far)."""
        step = self.step(retries)
        if not self.jitter:
            return step
        return (rng or random).uniform(step / 2, step)

    def allows(self, retries: int) -> bool:
        """Whether another retry is allowed after ``retries`` retries."""
        return retries < self.max_retries


#: The policy of tasks that register none.
DEFAULT_POLICY = RetryPolicy()

_registry: dict[str, RetryPolicy] = {}


def register(task_name: str, policy: RetryPolicy) -> None:
    """Give ``task_name`` its own policy (the task decorator's ``retry_policy`` does this)."""
    _registry[task_name] = policy


def policy_for(task_name: str) -> RetryPolicy:
    """The registered policy of ``task_name``, else :data:`DEFAULT_POLICY`."""
    return _registry.get(task_name, DEFAULT_POLICY)
