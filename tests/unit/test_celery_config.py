"""The Celery configuration: JSON only, strict routing, Redis-correct priorities."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from celery.schedules import crontab

from celeryref import queues
from celeryref.app.beat_schedule import beat_schedule
from celeryref.app.config import celery_config
from celeryref.app.single_beat import LOCK_KEY
from celeryref.celery_app import app
from celeryref.settings import load_settings

CONFIG = celery_config(load_settings({}))


def test_only_json_is_accepted_or_produced() -> None:
    assert CONFIG["accept_content"] == ["json"]
    assert CONFIG["result_accept_content"] == ["json"]
    assert {CONFIG["task_serializer"], CONFIG["result_serializer"]} == {"json"}
    assert "pickle" not in app.conf.accept_content


def test_queues_are_declared_and_missing_ones_are_an_error() -> None:
    assert [q.name for q in CONFIG["task_queues"]] == list(queues.ALL_QUEUES)
    assert CONFIG["task_create_missing_queues"] is False


def test_each_task_module_routes_to_its_queue() -> None:
    """Every registered task of ``celeryref.tasks.<queue>`` is routed to ``<queue>``."""
    app.loader.import_default_modules()
    ours = [name for name in app.tasks if name.startswith(queues.TASK_PACKAGE)]
    assert len(ours) >= 10
    for name in ours:
        expected = name.split(".")[2]
        assert app.amqp.router.route({}, name)["queue"].name == expected, name


def test_unset_priority_is_not_the_top_priority_on_redis() -> None:
    """kombu's Redis default of 0 would make every task urgent; ours is in the middle."""
    assert CONFIG["task_default_priority"] == queues.PRIORITY_NORMAL
    assert queues.PRIORITY_TOP < queues.PRIORITY_NORMAL < queues.PRIORITY_BULK
    options = CONFIG["broker_transport_options"]
    assert options["priority_steps"] == list(range(10))
    assert queues.redis_keys("default")[:3] == ["default", "default:1", "default:2"]


def test_long_task_settings() -> None:
    s = load_settings({})
    assert CONFIG["task_acks_late"] and CONFIG["task_reject_on_worker_lost"]
    assert CONFIG["worker_prefetch_multiplier"] == 1
    assert CONFIG["task_track_started"] and CONFIG["worker_send_task_events"]
    assert (
        CONFIG["task_soft_time_limit"]
        < CONFIG["task_time_limit"]
        < CONFIG["broker_transport_options"]["visibility_timeout"]
    )
    assert CONFIG["worker_max_tasks_per_child"] == s.worker_max_tasks_per_child
    assert CONFIG["worker_max_memory_per_child"] == s.worker_max_memory_per_child_kib


def test_only_workers_retry_a_whole_result_store() -> None:
    """Clients fail fast (the API answers 503); workers ride out a Redis restart."""
    assert CONFIG["result_backend_always_retry"] is False
    worker = celery_config(load_settings({"RESULT_STORE_RETRIES": "20"}))
    assert worker["result_backend_always_retry"] is True
    assert worker["result_backend_max_retries"] == 20


def test_beat_schedule_matches_the_spec() -> None:
    """SPEC F2: hourly, 02:00 daily, 5-minute health check at top priority, 30 s job
    with args and kwargs, Monday 09:00, 1st of the month 00:00."""
    s = load_settings({})
    sched = beat_schedule(s)
    by_task = {e["task"].rsplit(".", 1)[1]: e for e in sched.values()}

    assert by_task["cleanup_expired_sessions"]["schedule"] == crontab(minute=0)
    assert by_task["daily_report"]["schedule"] == crontab(hour=2, minute=0)
    health = by_task["health_check"]
    assert health["schedule"].run_every.total_seconds() == 300
    assert health["options"] == {"queue": "priority", "priority": 0}
    heartbeat = by_task["beat_heartbeat"]
    assert heartbeat["schedule"].run_every.total_seconds() == 30
    assert heartbeat["args"] and heartbeat["kwargs"]
    assert by_task["weekly_summary"]["schedule"] == crontab(hour=9, minute=0, day_of_week="mon")
    assert by_task["monthly_archive"]["schedule"] == crontab(hour=0, minute=0, day_of_month=1)


def test_every_scheduled_task_exists() -> None:
    app.loader.import_default_modules()
    for entry in beat_schedule(load_settings({})).values():
        assert entry["task"] in app.tasks, entry["task"]


def _registered(extra_task_packages: str) -> dict[str, str]:
    """Task name -> queue of every task a worker process would register."""
    code = (
        "import json\n"
        "from celeryref.celery_app import app\n"
        "app.loader.import_default_modules()\n"
        "router = app.amqp.router\n"
        "print(json.dumps({n: router.route({}, n)['queue'].name for n in app.tasks"
        " if not n.startswith('celery.')}))\n"
    )
    env = {**os.environ, "EXTRA_TASK_PACKAGES": extra_task_packages}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    registered: dict[str, str] = json.loads(run.stdout.splitlines()[-1])
    return registered


def test_a_production_worker_registers_no_benchmark_or_drill_task() -> None:
    """Given no EXTRA_TASK_PACKAGES, a worker registers product tasks only."""
    names = _registered("")
    assert names, "no task registered at all"
    assert [n for n in names if not n.startswith(queues.TASK_PACKAGE + ".")] == []


def test_extra_task_packages_add_tooling_tasks_routed_by_their_module_path() -> None:
    """The bench and fault overrides add their tasks, routed like product tasks."""
    names = _registered("bench.tasks,devtools.tasks")
    assert names["bench.tasks.default.noop"] == queues.DEFAULT
    assert names["bench.tasks.cpu_intensive.burn_cpu"] == queues.CPU_INTENSIVE
    assert names["bench.tasks.priority.ping"] == queues.PRIORITY
    assert names["devtools.tasks.default.drills.sleep_for"] == queues.DEFAULT


def test_beat_keeps_its_schedule_and_lock_in_the_state_db() -> None:
    """redbeat's lock is the key the health check reads, in the state DB, living
    BEAT_LOCK_TTL seconds and extended several times within it."""
    from celery import Celery
    from redbeat.schedulers import RedBeatConfig

    s = load_settings({"BEAT_LOCK_TTL": "10"})
    config = celery_config(s)
    assert config["beat_scheduler"] == "redbeat.RedBeatScheduler"
    assert config["redbeat_redis_url"] == s.state_redis_url
    assert config["redbeat_lock_timeout"] == 10
    assert config["beat_max_loop_interval"] <= 10 / 4
    beat_app = Celery(set_as_current=False)
    beat_app.conf.update(config)
    assert RedBeatConfig(beat_app).lock_key == LOCK_KEY


def test_the_prefork_pool_named_on_the_command_line_is_ours() -> None:
    """`--pool prefork` (Celery's default) runs the pool without F27's hang; `--pool custom`
    still selects the threads pool it names."""
    from types import SimpleNamespace

    from celery.bin.worker import WorkersPool

    from celeryref.upstream import prefork_pool

    ctx = SimpleNamespace(obj=SimpleNamespace(app=app), token_normalize_func=None)
    assert WorkersPool().convert("prefork", None, ctx) is prefork_pool.TaskPool
    assert WorkersPool().convert("threads", None, ctx) is not prefork_pool.TaskPool
