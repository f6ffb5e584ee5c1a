"""Per-task history and metrics, shared by every worker through Redis (SPEC F3).

Each finished attempt is pushed onto a per-task list trimmed to the newest
:data:`HISTORY_SIZE` entries, and counted in a per-task hash: outcomes, the sum of
durations and a duration histogram (one field per bucket, made cumulative when
read). The ``app`` service renders these as Prometheus metrics at ``/metrics``
(:func:`collect`), so one scrape sees the whole cluster; Flower's own ``/metrics``
adds the event-based view.

Off the hot path (issue 15): :func:`record` only adds the attempt to this
process's aggregate; a daemon thread writes the aggregate every
``STATS_FLUSH_INTERVAL`` seconds in one pipelined round trip (a handful of
commands per task *name*, however many attempts finished), and the worker writes
what is left when a process stops (:mod:`celeryref.app.signals`). Writing each
attempt as it finished cost ~14 Redis commands per task. What a metric may lose:
the last interval of a process killed outright (SIGKILL, OOM); a flush Redis
refuses is merged back and tried again (history capped at :data:`HISTORY_SIZE`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from celeryref.adapters import redis_state
from celeryref.settings import settings

logger = logging.getLogger(__name__)

#: Entries of history kept per task (newest first).
HISTORY_SIZE = 100
#: Upper bounds (seconds) of the duration histogram buckets.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)
#: Outcomes counted per task.
#: ("replaced": the task handed its work to a canvas with ``self.replace``.)
OUTCOMES = ("succeeded", "failed", "retried", "dead_lettered", "replaced")

_TASKS_KEY = redis_state.key("stats", "tasks")


def _history_key(task_name: str) -> str:
    return redis_state.key("history", task_name)


def _stats_key(task_name: str) -> str:
    return redis_state.key("stats", task_name)


def _bucket_field(duration: float) -> str:
    """The hash field of the one bucket ``duration`` falls in (``inf`` past the last)."""
    for bound in DURATION_BUCKETS:
        if duration <= bound:
            return f"b_{bound}"
    return "b_inf"


@dataclass
class _Pending:
    """Attempts of one task name not written yet."""

    counts: Counter[str] = field(default_factory=Counter)
    duration_sum: float = 0.0
    #: JSON entries, oldest first.
    history: list[str] = field(default_factory=list)


class _Aggregate:
    """This process's attempts since the last flush, and the thread that flushes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, _Pending] = {}
        self.wake = threading.Event()
        self.pid = -1  # the flusher runs in this process (a forked child starts its own)

    def add(self, task_name: str, outcome: str, duration: float, entry: str) -> None:
        with self.lock:
            p = self.pending.setdefault(task_name, _Pending())
            p.counts[outcome] += 1
            p.counts["duration_count"] += 1
            p.counts[_bucket_field(duration)] += 1
            p.duration_sum += duration
            p.history.append(entry)
            del p.history[:-HISTORY_SIZE]
        if self.pid != os.getpid():
            self._start_flusher()

    def forget_parent(self) -> None:
        """In a forked child: the parent's attempts are the parent's to write."""
        self.lock, self.pending, self.wake, self.pid = threading.Lock(), {}, threading.Event(), -1

    def _start_flusher(self) -> None:
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
        threading.Thread(target=self._run, name="task-stats-flush", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.wake.wait(settings.stats_flush_interval)
            self.wake.clear()
            try:
                self.flush()
            except Exception as exc:  # retried at the next interval
                logger.warning("task stats not written yet (%r)", exc)

    def take(self) -> dict[str, _Pending]:
        with self.lock:
            taken, self.pending = self.pending, {}
        return taken

    def give_back(self, taken: dict[str, _Pending]) -> None:
        with self.lock:
            for name, p in taken.items():
                now = self.pending.setdefault(name, _Pending())
                now.counts.update(p.counts)
                now.duration_sum += p.duration_sum
                now.history[:0] = p.history
                del now.history[:-HISTORY_SIZE]

    def flush(self) -> None:
        taken = self.take()
        if not taken:
            return
        pipe = redis_state.client().pipeline(transaction=False)
        pipe.sadd(_TASKS_KEY, *taken)
        for name, p in taken.items():
            pipe.lpush(_history_key(name), *p.history)
            pipe.ltrim(_history_key(name), 0, HISTORY_SIZE - 1)
            stats = _stats_key(name)
            for counter, n in p.counts.items():
                pipe.hincrby(stats, counter, n)
            pipe.hincrbyfloat(stats, "duration_sum", p.duration_sum)
        try:
            pipe.execute()
        except Exception:
            self.give_back(taken)
            raise


_aggregate = _Aggregate()
os.register_at_fork(after_in_child=_aggregate.forget_parent)


def record(
    task_name: str, task_id: str, outcome: str, duration: float, error: str | None = None
) -> None:
    """Count one finished attempt; it reaches Redis with the next flush (module docstring)."""
    entry = {
        "task_id": task_id,
        "outcome": outcome,
        "duration": round(duration, 6),
        "finished_at": time.time(),
        "error": error,
    }
    _aggregate.add(task_name, outcome, duration, json.dumps(entry))


def flush() -> None:
    """Write this process's attempts now (process shutdown, tests); raises if Redis does."""
    _aggregate.flush()


def history(task_name: str, limit: int = HISTORY_SIZE) -> list[dict[str, Any]]:
    """The newest ``limit`` attempts of ``task_name``, newest first."""
    raw = redis_state.client().lrange(_history_key(task_name), 0, limit - 1)
    return [json.loads(item) for item in raw]


@dataclass(frozen=True)
class TaskStats:
    task_name: str
    counts: dict[str, int]
    duration_sum: float
    duration_count: int
    #: Cumulative counts per bucket upper bound (seconds).
    buckets: dict[float, int]


def stats(task_name: str) -> TaskStats:
    raw = {
        k.decode(): v.decode()
        for k, v in redis_state.client().hgetall(_stats_key(task_name)).items()
    }
    return TaskStats(
        task_name=task_name,
        counts={o: int(raw.get(o, 0)) for o in OUTCOMES},
        duration_sum=float(raw.get("duration_sum", 0.0)),
        duration_count=int(raw.get("duration_count", 0)),
        buckets=_cumulative(raw),
    )


def _cumulative(raw: dict[str, str]) -> dict[float, int]:
    """Per-bucket counts made cumulative (Prometheus ``le``)."""
    total, out = 0, {}
    for bound in DURATION_BUCKETS:
        total += int(raw.get(f"b_{bound}", 0))
        out[bound] = total
    return out


def all_stats() -> list[TaskStats]:
    names = sorted(n.decode() for n in redis_state.client().smembers(_TASKS_KEY))
    return [stats(name) for name in names]


class RedisTaskStatsCollector:
    """A prometheus_client collector reading the cluster-wide stats from Redis."""

    def collect(self) -> Iterator[Metric]:
        outcomes = CounterMetricFamily(
            "celeryref_task_outcomes",
            "Finished task attempts by outcome",
            labels=["task", "outcome"],
        )
        durations = HistogramMetricFamily(
            "celeryref_task_duration_seconds", "Task attempt duration", labels=["task"]
        )
        for s in all_stats():
            for outcome, count in s.counts.items():
                outcomes.add_metric([s.task_name, outcome], count)
            buckets = [(str(b), float(c)) for b, c in s.buckets.items()]
            buckets.append(("+Inf", float(s.duration_count)))
            durations.add_metric([s.task_name], buckets, s.duration_sum)
        yield outcomes
        yield durations
