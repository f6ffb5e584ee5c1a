"""Reliability primitives across real workers: idempotency, retries, dead letters, alerts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from celeryref import queues
from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.client.__main__ import main as cli
from celeryref.errors import InvalidArguments, UpstreamUnavailable
from celeryref.observability import task_stats
from celeryref.reliability import delivery_guard, error_log
from celeryref.reliability.circuit_breaker import CircuitBreaker
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.settings import settings
from celeryref.tasks import default, io_intensive, priority
from tests.conftest import wait_for
from tests.integration.conftest import RecordingHandler
from tests.support import tasks as support


def side_effect_rows() -> list[tuple[str, str]]:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT label, task_id FROM test_side_effects ORDER BY id")
        return cur.fetchall()


def test_two_workers_racing_on_one_key_run_the_side_effect_once(worker_process: Any) -> None:
    """Two worker processes get the same key at once: one runs it, both return its result."""
    worker_process(queues.DEFAULT, name="racer-a")
    worker_process(queues.DEFAULT, name="racer-b")
    headers = {"idempotency_key": "order-7-confirmation"}
    first = support.side_effect.apply_async(("confirm",), {"hold_seconds": 1.5}, headers=headers)
    second = support.side_effect.apply_async(("confirm",), {"hold_seconds": 1.5}, headers=headers)

    results = [first.get(timeout=60), second.get(timeout=60)]

    rows = side_effect_rows()
    assert len(rows) == 1
    assert results[0] == results[1] == {"label": "confirm", "ran_as": rows[0][1]}
    assert {first.worker, second.worker} == {
        f"racer-a@{first.worker.split('@')[1]}",
        f"racer-b@{first.worker.split('@')[1]}",
    }, "both workers took part in the race"


def test_a_repeated_call_returns_the_stored_result(worker: Any) -> None:
    """Same arguments, no caller key: the derived key makes the repeat a no-op."""
    with worker(queues.DEFAULT):
        one = support.side_effect.delay("once").get(timeout=10)
        two = support.side_effect.delay("once").get(timeout=10)
        other = support.side_effect.delay("other").get(timeout=10)

    assert one == two != other
    assert [label for label, _ in side_effect_rows()] == ["once", "other"]


@pytest.mark.parametrize(("in_transaction", "effects"), [(True, 1), (False, 2)])
def test_a_key_completed_with_the_effect_survives_a_failure_after_the_commit(
    worker: Any, in_transaction: bool, effects: int
) -> None:
    """F11: the effect commits, then the run fails transiently and is retried. With the key
    completed in the effect's transaction the retry returns the stored result; without
    (the control) the retry runs the effect a second time."""
    with worker(queues.DEFAULT):
        result = support.effect_then_failure.delay("charge", in_transaction)
        value = result.get(timeout=30)

    rows = side_effect_rows()
    assert len(rows) == effects
    assert result.retries == 1
    assert value == {"label": "charge", "ran_as": rows[-1][1]}


def test_bad_arguments_are_dead_lettered_and_one_replay_after_the_fix_succeeds(
    worker: Any,
) -> None:
    """A missing order fails at once (no retry), is stored with its reason, and one
    replay after the order exists applies the discount exactly once."""
    with worker(queues.DEFAULT, queues.PRIORITY):
        failed = support.apply_discount.delay(42)
        with pytest.raises(InvalidArguments):
            failed.get(timeout=10)
        (entry,) = dead_letters.list_entries()
        assert (entry.task_id, entry.retries, entry.args) == (failed.id, 0, [42])
        assert entry.exception_type == "InvalidArguments"
        assert "order 42 does not exist" in entry.exception
        assert entry.traceback and "apply_discount" in entry.traceback
        assert entry.queue == queues.DEFAULT

        with db.connection() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO test_orders (id, total) VALUES (42, 100)")
        replay_id = dead_letters.replay(app, entry.id)
        assert app.AsyncResult(replay_id).get(timeout=10) == {"order_id": 42, "discounts": 1}
        with pytest.raises(InvalidArguments, match="already replayed"):
            dead_letters.replay(app, entry.id)

    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT discounts FROM test_orders WHERE id = 42")
        assert cur.fetchone() == (1,)
    assert dead_letters.get(entry.id).replay_task_id == replay_id
    assert dead_letters.purge(entry_ids=[entry.id]) == 1
    assert dead_letters.list_entries() == []


def test_transient_errors_are_retried_a_bounded_number_of_times_then_dead_lettered(
    worker: Any,
) -> None:
    """max_retries=2: three attempts, then the dead-letter store; never an endless loop."""
    with worker(queues.DEFAULT, queues.PRIORITY):
        result = support.always_unavailable.delay()
        with pytest.raises(UpstreamUnavailable):
            result.get(timeout=30)

    (entry,) = dead_letters.list_entries()
    assert (entry.task_id, entry.retries, entry.category) == (result.id, 2, "upstream_unavailable")

    def flushed() -> task_stats.TaskStats | None:
        s = task_stats.stats("tests.support.always_unavailable")
        return s if s.counts["dead_lettered"] else None

    stats = wait_for(flushed, 10, "the flushed stats")
    assert stats.counts["retried"] == 2 and stats.counts["dead_lettered"] == 1
    logged = [e for e in error_log.recent_errors() if e["task_id"] == result.id]
    assert [e["retries"] for e in logged] == [2, 1, 0]


def test_dead_letter_alerts_operators_through_the_priority_queue(
    worker: Any, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead letter enqueues notify_operators on `priority`, which posts to the webhook."""
    local = settings.model_copy(update={"alert_webhook_url": f"{http_server}/hook"})
    monkeypatch.setattr(priority, "settings", local)
    with worker(queues.DEFAULT, queues.PRIORITY):
        with pytest.raises(InvalidArguments):
            support.apply_discount.delay(404).get(timeout=10)
        wait_for(lambda: RecordingHandler.posted, 20, "the webhook alert")

    (alert,) = RecordingHandler.posted
    (entry,) = dead_letters.list_entries()
    assert alert["source"] == "tests.support.apply_discount"
    assert alert["details"]["dead_letter_id"] == entry.id
    assert "order 404 does not exist" in alert["body"]


def test_database_errors_reset_the_worker_pool(worker: Any) -> None:
    """The error callback for connection errors replaces the process's Postgres pool."""
    with worker(queues.DEFAULT, queues.PRIORITY):
        pool_before = db._pool
        assert pool_before is not None
        with pytest.raises(Exception, match="server closed the connection"):
            support.database_gone.delay().get(timeout=10)
        # The dead-letter write and the next task use a fresh pool.
        assert db._pool is not pool_before
        assert default.resilient_db_operation.delay("count_active_sessions").get(timeout=10)


def test_a_pool_reset_does_not_break_connections_other_threads_hold() -> None:
    """worker-io's threads share one pool: a reset by one thread lets the others finish
    and return their connections (closing the pool under them raised PoolError)."""
    with db.connection() as held, held.cursor() as cur:
        old_pool = db._pool
        db.discard_pool()  # what reset_db_pool does after another thread's error
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    assert old_pool is not None and not old_pool.closed
    with db.connection() as fresh, fresh.cursor() as cur:
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    assert db._pool is not None and db._pool is not old_pool


def test_only_allowlisted_database_operations_run(worker: Any) -> None:
    """Named operations run with parameters; SQL text in a message is refused."""
    with worker(queues.DEFAULT, queues.PRIORITY):
        counted = default.resilient_db_operation.delay("count_active_sessions").get(timeout=10)
        refused = default.resilient_db_operation.delay("DROP TABLE user_sessions")
        with pytest.raises(InvalidArguments, match="unknown database operation"):
            refused.get(timeout=10)

    assert counted == {"rows": [[0]]}
    (entry,) = dead_letters.list_entries()
    assert entry.args == ["DROP TABLE user_sessions"]


def test_a_redelivery_loop_is_dead_lettered(worker: Any) -> None:
    """A message past MAX_DELIVERIES is refused and recorded, not run and not lost."""
    task_id = "keeps-killing-its-worker"
    for _ in range(settings.max_deliveries):
        delivery_guard.record_delivery(task_id, 0)
    with worker(queues.DEFAULT, queues.PRIORITY):
        support.side_effect.apply_async(("never",), task_id=task_id)
        entry = wait_for(dead_letters.list_entries, 10, "the dead letter")[0]

    assert (entry.task_id, entry.category) == (task_id, "redelivery_loop")
    assert side_effect_rows() == []


def test_hard_time_limit_kills_and_dead_letters(worker_process: Any) -> None:
    """A task that ignores time is killed at its hard limit and lands in the store."""
    worker_process(queues.DEFAULT, queues.PRIORITY, name="limits")
    result = support.sleep_past_limit.delay(30)
    with pytest.raises(Exception, match="TimeLimitExceeded"):
        result.get(timeout=30)

    entry = wait_for(dead_letters.list_entries, 10, "the dead letter")[0]
    assert (entry.task_id, entry.category) == (result.id, "hard_time_limit")


def test_history_keeps_the_newest_entries_and_metrics_count_outcomes(worker: Any) -> None:
    """Every attempt is recorded; history is bounded; Prometheus sees counts and durations."""
    with worker(queues.DEFAULT):
        default.add.delay(1, 1).get(timeout=10)
    name = default.add.name
    (latest,) = wait_for(lambda: task_stats.history(name), 10, "the flushed history")
    assert latest["outcome"] == "succeeded" and latest["duration"] >= 0

    for i in range(task_stats.HISTORY_SIZE + 5):
        task_stats.record(name, f"synthetic-{i}", "failed", 0.2, "boom")
    task_stats.flush()
    history = task_stats.history(name)
    assert len(history) == task_stats.HISTORY_SIZE
    assert history[0]["task_id"] == f"synthetic-{task_stats.HISTORY_SIZE + 4}"

    registry = CollectorRegistry()
    registry.register(task_stats.RedisTaskStatsCollector())
    text = generate_latest(registry).decode()
    assert f'celeryref_task_outcomes_total{{outcome="succeeded",task="{name}"}} 1.0' in text
    assert f'celeryref_task_outcomes_total{{outcome="failed",task="{name}"}} 105.0' in text
    assert f'celeryref_task_duration_seconds_count{{task="{name}"}} 106.0' in text


def test_operators_work_the_dead_letter_store_from_the_cli(
    worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deadletters list|show|replay|purge` in the image's CLI, against the real store."""
    with worker(queues.DEFAULT):
        with pytest.raises(InvalidArguments):
            support.apply_discount.delay(7).get(timeout=10)
        (entry,) = dead_letters.list_entries()

        assert cli(["deadletters", "list"]) == 0
        assert json.loads(capsys.readouterr().out)["id"] == entry.id
        assert cli(["deadletters", "show", str(entry.id)]) == 0
        shown = capsys.readouterr().out
        assert "order 7 does not exist" in shown and "Traceback" in shown

        with db.connection() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO test_orders (id, total) VALUES (7, 10)")
        assert cli(["deadletters", "replay", str(entry.id)]) == 0
        replay_id = capsys.readouterr().out.split()[-1]
        assert app.AsyncResult(replay_id).get(timeout=10)["discounts"] == 1
        assert cli(["deadletters", "replay", str(entry.id)]) == 2
        assert "already replayed" in capsys.readouterr().err

    assert cli(["deadletters", "purge", str(entry.id)]) == 0
    assert "purged 1" in capsys.readouterr().out
    assert cli(["deadletters", "show", str(entry.id)]) == 2


def test_external_api_falls_back_to_the_last_good_answer_and_the_breaker_stops_calls(
    worker: Any, http_server: str
) -> None:
    """Upstream down: cached answer served; after 5 failures the shared breaker opens and
    the upstream is no longer called at all."""
    url = f"{http_server}/quotes"
    task = io_intensive.external_api_with_circuit_breaker
    with worker(queues.IO_INTENSIVE, pool="threads", concurrency=2):
        fresh = task.delay("quotes", url).get(timeout=10)
        assert fresh == {"response": {"status": 200, "json": {"ok": True}}, "fallback": False}

        RecordingHandler.failures["/quotes"] = 10_000  # from now on: 503
        for _ in range(5):
            assert task.delay("quotes", url).get(timeout=10) == {**fresh, "fallback": True}
        hits_when_opened = len(RecordingHandler.hits["/quotes"])
        assert CircuitBreaker("quotes").snapshot().state == "open"

        assert task.delay("quotes", url).get(timeout=10) == {**fresh, "fallback": True}
    assert len(RecordingHandler.hits["/quotes"]) == hits_when_opened == 6
