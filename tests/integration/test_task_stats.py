"""Task metrics and history leave a process in batches (issue 15).

:mod:`celeryref.observability.task_stats` against a real Redis: many finished attempts
reach Redis in one round trip, with the same counts, durations, cumulative buckets and
bounded history as when each was written on its own; attempts a flush could not write
(Redis unreachable) are kept and written by the next one.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from celeryref.adapters import redis_state
from celeryref.observability import task_stats
from tests.integration.test_result_round_trip import round_trips

NAME = "tests.stats.example"


def test_many_attempts_are_written_in_one_round_trip(clean_state: None) -> None:
    durations = [0.005, 0.02, 0.2, 2.0, 700.0]
    for i, duration in enumerate(durations * 30):
        task_stats.record(NAME, f"id-{i}", "succeeded" if i % 3 else "failed", duration)
    assert task_stats.history(NAME) == []  # nothing written per attempt
    redis_state.client().ping()  # the connection is open: only the flush is counted
    with round_trips() as sent:
        task_stats.flush()
    assert len(sent) == 1
    stats = task_stats.stats(NAME)
    assert stats.counts["succeeded"] == 100 and stats.counts["failed"] == 50
    assert stats.duration_count == 150
    assert stats.duration_sum == pytest.approx(sum(durations) * 30)
    # cumulative: <= 0.01 holds 30, <= 0.05 holds 60, ..., 700 s is past the last bucket
    assert [stats.buckets[b] for b in (0.01, 0.05, 0.5, 5.0, 600.0)] == [30, 60, 90, 120, 120]
    history = task_stats.history(NAME)
    assert len(history) == task_stats.HISTORY_SIZE
    assert history[0]["task_id"] == "id-149"  # newest first


def test_attempts_a_flush_could_not_write_are_written_by_the_next(
    clean_state: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task_stats.record(NAME, "first", "succeeded", 0.1)
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.5)
    real = redis_state.client
    monkeypatch.setattr(redis_state, "client", lambda: unreachable)
    with pytest.raises(redis.ConnectionError):
        task_stats.flush()
    monkeypatch.setattr(redis_state, "client", real)
    task_stats.record(NAME, "second", "retried", 0.2)
    task_stats.flush()
    stats = task_stats.stats(NAME)
    assert (stats.counts["succeeded"], stats.counts["retried"], stats.duration_count) == (1, 1, 2)
    assert [h["task_id"] for h in task_stats.history(NAME)] == ["second", "first"]


def test_a_worker_writes_its_metrics_without_a_round_trip_per_task(worker: Any) -> None:
    """Finished tasks show in the metrics within the flush interval, from a real worker."""
    from celeryref import queues
    from celeryref.tasks import default
    from tests.conftest import wait_for

    with worker(queues.DEFAULT):
        for i in range(5):
            default.add.delay(i, 1).get(timeout=10)
        stats = wait_for(
            lambda: (s := task_stats.stats(default.add.name)).duration_count == 5 and s,
            10,
            "five attempts in the metrics",
        )
    assert stats.counts["succeeded"] == 5
