"""Postgres-backed tasks, the per-process pool, migrations, the beat lease, the redelivery cap."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Reject
from celery.signals import worker_process_shutdown

from celeryref import queues
from celeryref.adapters import db, redis_state
from celeryref.adapters.migrate import migrate
from celeryref.app.single_beat import LOCK_KEY, RedisLease, SingleBeatScheduler
from celeryref.celery_app import app
from celeryref.reliability import delivery_guard
from celeryref.settings import settings
from celeryref.tasks import default, priority, scheduled


def rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_migrations_are_applied_once(clean_state: None) -> None:
    """Running the migrations again applies nothing and keeps the recorded versions."""
    before = rows("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert migrate() == []
    assert rows("SELECT version, applied_at FROM schema_migrations ORDER BY version") == before
    assert ("0001_initial",) in [(v,) for v, _ in before]


def test_worker_process_opens_its_pool_at_init_and_closes_it_at_shutdown(worker: Any) -> None:
    """SPEC F4: the pool exists as soon as the worker process is up; shutdown closes it."""
    db.close_pool()
    with worker(queues.DEFAULT):
        pool = db._pool
        assert pool is not None and db._pool_pid == os.getpid()
        assert default.add.delay(2, 3).get(timeout=10) == 5
    # The solo pool used here sends no shutdown signal; prefork sends this one.
    worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    assert db._pool is None and pool.closed


def test_cleanup_expired_sessions_deletes_exactly_the_expired(worker: Any) -> None:
    """Given 3 expired and 2 live sessions, cleanup deletes the 3 and keeps the 2."""
    now = datetime.now(UTC)
    with db.connection() as conn, conn.cursor() as cur:
        for i, delta in enumerate([-3600, -60, -1, 60, 3600]):
            cur.execute(
                "INSERT INTO user_sessions (user_id, token, expires_at) VALUES (%s, %s, %s)",
                (i, f"t{i}", now + timedelta(seconds=delta)),
            )
    with worker(queues.SCHEDULED):
        deleted = scheduled.cleanup_expired_sessions.delay().get(timeout=10)

    assert deleted == 3
    assert sorted(r[0] for r in rows("SELECT token FROM user_sessions")) == ["t3", "t4"]


def test_beat_heartbeat_records_args_kwargs_and_worker(worker: Any) -> None:
    """The 30-second job stores its args, kwargs and the worker node that ran it."""
    with worker(queues.SCHEDULED):
        result = scheduled.beat_heartbeat.delay("beat", note="hello").get(timeout=10)

    (source, note, worker_name) = rows("SELECT source, note, worker FROM beat_heartbeats")[0]
    assert (source, note) == ("beat", "hello")
    assert worker_name == result["worker"]


def test_reports_count_the_period(worker: Any) -> None:
    """The daily report counts yesterday's heartbeats and ignores today's."""
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO beat_heartbeats (source, fired_at) VALUES ('x', %s)", (yesterday,))
        cur.execute("INSERT INTO beat_heartbeats (source) VALUES ('today')")
    with worker(queues.SCHEDULED):
        report = scheduled.daily_report.delay().get(timeout=10)
        weekly = scheduled.weekly_summary.delay().get(timeout=10)

    assert report["heartbeats"] == 1 and weekly["heartbeats"] == 1
    assert rows("SELECT kind FROM reports ORDER BY id") == [("daily",), ("weekly",)]


def test_health_check_records_latencies(worker: Any) -> None:
    """The priority queue's health check measures Redis and Postgres and stores it."""
    with worker(queues.PRIORITY):
        result = priority.health_check.apply_async(priority=queues.PRIORITY_TOP).get(timeout=10)

    assert result["redis_ms"] >= 0 and result["postgres_ms"] >= 0
    assert rows("SELECT count(*) FROM health_checks") == [(1,)]


def test_a_message_delivered_too_often_is_refused_not_run(worker: Any) -> None:
    """Given a task already delivered MAX_DELIVERIES times, the next delivery is rejected."""
    task_id = "redelivered-task"
    for _ in range(settings.max_deliveries):
        delivery_guard.record_delivery(task_id, 0)
    with worker(queues.SCHEDULED):
        result = scheduled.beat_heartbeat.apply_async(("loop",), task_id=task_id)
        with pytest.raises(Reject):
            result.get(timeout=10)

    assert rows("SELECT count(*) FROM beat_heartbeats") == [(0,)]
    assert delivery_guard.record_delivery(task_id, 0) == settings.max_deliveries + 2


def test_beat_lease_is_exclusive(clean_state: None) -> None:
    """One holder at a time; only the holder renews or releases."""
    first = RedisLease(redis_state.client(), LOCK_KEY, ttl=30)
    second = RedisLease(redis_state.client(), LOCK_KEY, ttl=30)

    assert first.acquire()
    assert not second.acquire()
    assert not second.renew() and not second.release()
    assert first.renew()
    assert first.release()
    assert second.acquire()


def test_second_beat_waits_in_standby_until_the_first_stops(
    clean_state: None, tmp_path: Path
) -> None:
    """A second scheduler does not start while another holds the lease; it does after."""
    holder = RedisLease(redis_state.client(), LOCK_KEY, ttl=30)
    assert holder.acquire()
    started = threading.Event()
    schedulers: list[SingleBeatScheduler] = []

    def start_standby() -> None:
        schedulers.append(
            SingleBeatScheduler(app=app, schedule_filename=str(tmp_path / "schedule"))
        )
        started.set()

    thread = threading.Thread(target=start_standby, daemon=True)
    SingleBeatScheduler.standby_poll = 0.1
    thread.start()

    assert not started.wait(1.0), "second beat started while the lease was held"
    assert not (tmp_path / "schedule").exists(), "standby beat opened the schedule file"
    holder.release()
    assert started.wait(5.0), "second beat did not take over the released lease"
    assert schedulers[0].lease.holder() == schedulers[0].lease.token
    schedulers[0].close()
    assert schedulers[0].lease.holder() is None


def test_the_banner_only_scheduler_takes_no_lease(clean_state: None) -> None:
    """Celery builds a lazy scheduler just to print its banner: it must not hold the lease."""
    banner = SingleBeatScheduler(app=app, lazy=True)
    assert RedisLease(redis_state.client(), LOCK_KEY, ttl=30).holder() is None
    assert not banner.holds_lease
