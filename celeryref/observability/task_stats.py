"""Per-task history and metrics, shared by every worker through Redis (SPEC F3).

Each finished attempt is pushed onto a per-task list trimmed to the newest
:data:`HISTORY_SIZE` entries, and counted in a per-task hash: outcomes, the sum of
durations and a cumulative duration histogram. The ``app`` service renders these
as Prometheus metrics at ``/metrics`` (:func:`collect`), so one scrape sees the
whole cluster; Flower's own ``/metrics`` adds the event-based view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from celeryref.adapters import redis_state

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


def record(
    task_name: str, task_id: str, outcome: str, duration: float, error: str | None = None
) -> None:
    """Count one finished attempt and push it onto the task's bounded history."""
    entry = {
        "task_id": task_id,
        "outcome": outcome,
        "duration": round(duration, 6),
        "finished_at": time.time(),
        "error": error,
    }
    pipe = redis_state.client().pipeline(transaction=False)
    pipe.sadd(_TASKS_KEY, task_name)
    pipe.lpush(_history_key(task_name), json.dumps(entry))
    pipe.ltrim(_history_key(task_name), 0, HISTORY_SIZE - 1)
    stats = _stats_key(task_name)
    pipe.hincrby(stats, outcome, 1)
    pipe.hincrbyfloat(stats, "duration_sum", duration)
    pipe.hincrby(stats, "duration_count", 1)
    for bound in DURATION_BUCKETS:
        if duration <= bound:
            pipe.hincrby(stats, f"le_{bound}", 1)
    pipe.execute()


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
        buckets={b: int(raw.get(f"le_{b}", 0)) for b in DURATION_BUCKETS},
    )


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
