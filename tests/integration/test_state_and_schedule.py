"""Postgres-backed tasks, the per-process pool, migrations, the beat lock, the redelivery cap."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import beat
from celery.exceptions import Reject
from celery.signals import beat_init, worker_process_shutdown
from redbeat import RedBeatScheduler, RedBeatSchedulerEntry
from redis.exceptions import LockNotOwnedError

from celeryref import queues
from celeryref.adapters import db, redis_state
from celeryref.adapters.migrate import migrate
from celeryref.app.single_beat import KEY_PREFIX, LOCK_KEY
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


def started_beat(max_interval: float = 0.1) -> beat.Service:
    """A beat service as ``celery beat`` starts it, up to the lock (``beat_init``)."""
    service = beat.Service(app, max_interval=max_interval, scheduler_cls=app.conf.beat_scheduler)
    beat_init.send(sender=service)
    return service


def test_second_beat_waits_for_the_lock_until_the_first_stops(clean_state: None) -> None:
    """A second beat does not get past ``beat_init`` while another holds the lock; it does
    once the first stops, and stopping releases the lock."""
    holder = started_beat()
    assert holder.scheduler.lock.owned()
    took_over: list[bool] = []

    def standby() -> None:
        # redis-py keeps the lock's token per thread: check and stop it where it started.
        service = started_beat()
        took_over.append(service.scheduler.lock.owned())
        service.sync()

    thread = threading.Thread(target=standby, daemon=True)
    thread.start()

    thread.join(1.0)
    assert not took_over, "second beat started while the lock was held"
    holder.sync()
    thread.join(5.0)
    assert took_over == [True], "second beat did not take over the released lock"
    assert not redis_state.client().exists(LOCK_KEY)


def test_a_beat_that_lost_its_lock_stops_ticking(clean_state: None) -> None:
    """The lock expired and another beat took it: the next tick raises before it sends."""
    holder = started_beat()
    redis_state.client().set(LOCK_KEY, "another-beat", px=10_000)
    with pytest.raises(LockNotOwnedError):
        holder.scheduler.tick()
    holder.sync()
    assert redis_state.client().get(LOCK_KEY) == b"another-beat"


def test_a_restarted_beat_keeps_each_entrys_last_run(clean_state: None) -> None:
    """The schedule state lives in Redis (no file, no volume): a new beat process reads the
    last run the previous one stored instead of starting every entry afresh."""
    started_beat().sync()
    key = KEY_PREFIX + "beat-heartbeat"
    last_run = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    RedBeatSchedulerEntry.from_key(key, app=app).reschedule(last_run)

    restarted = started_beat()
    assert RedBeatSchedulerEntry.from_key(key, app=app).last_run_at == last_run
    restarted.sync()


def test_the_banner_only_scheduler_takes_no_lock(clean_state: None) -> None:
    """Celery builds a lazy scheduler just to print its banner: it writes nothing to Redis."""
    RedBeatScheduler(app=app, lazy=True)
    assert redis_state.client().keys(KEY_PREFIX + "*") == []
