"""The bodies of the benchmark tasks: plain functions, no Celery.

The deployment registers them in :mod:`bench.tasks` (``bench.tasks.<queue>``, added to
the bench stack's workers by ``EXTRA_TASK_PACKAGES``, through the deployment's
:class:`~celeryref.reliability.task_base.BaseTask`); the baseline (:mod:`.baseline`) registers
the same functions under the same names on a plain Celery app. Timestamps are
``time.time()`` seconds (every container shares the host's clock), so the client can
compute waits from them without polling.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

#: Hash rounds between two looks at the CPU clock in :func:`burn_cpu`.
_ROUNDS_PER_CHECK = 500


def noop() -> None:
    """Do nothing (sent with ``ignore_result``: the pure cost of a message)."""


def stamp(index: int = 0) -> float:
    """``time.time()`` (seconds) when the task ran; ``index`` only tells calls apart."""
    return time.time()


def sleep_stamp(seconds: float) -> list[float]:
    """Sleep ``seconds``; return ``[start, end]`` (``time.time()`` seconds)."""
    start = time.time()
    time.sleep(max(0.0, float(seconds)))
    return [start, time.time()]


def burn_cpu(milliseconds: float) -> list[float]:
    """Hash until this process used ``milliseconds`` of CPU time; ``[start, end, pid]``
    (the pid tells the gaps between one process's tasks apart, :mod:`bench.cpu_tasks`)."""
    start, cpu_start = time.time(), time.process_time()
    digest = b"bench"
    while (time.process_time() - cpu_start) * 1000 < milliseconds:
        for _ in range(_ROUNDS_PER_CHECK):
            digest = hashlib.sha256(digest).digest()
    return [start, time.time(), float(os.getpid())]


def fan_in(results: list[Any]) -> list[float]:
    """Chord body: ``[start time, number of header results]``."""
    return [time.time(), float(len(results))]
