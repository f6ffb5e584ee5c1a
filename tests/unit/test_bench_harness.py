"""The benchmark harness: its own ports, and settings read only once pointed there."""

from __future__ import annotations

import subprocess
import sys

from bench import baseline, stack
from tests.conftest import ROOT


def test_stack_env_offsets_every_host_port() -> None:
    """Ports +30000, the client settings on loopback, the bench image tag."""
    env = stack.stack_env({"PATH": "/bin"}, {"REDIS_PASSWORD": "pw"})
    assert env["REDIS_HOST_PORT"] == "36379"
    assert env["POSTGRES_HOST_PORT"] == "35432"
    assert env["FLOWER_HOST_PORT"] == "35555"
    assert env["APP_HOST_PORT"] == "38000"
    assert env["MAILSINK_HOST_PORT"] == "38025"
    assert (env["REDIS_HOST"], env["REDIS_PORT"]) == ("127.0.0.1", "36379")
    assert env["APP_IMAGE"] == "celeryref/app:bench"
    assert env["REDIS_PASSWORD"] == "pw"


def test_importing_the_harness_does_not_read_settings() -> None:
    """Settings are read at import; the harness must set the stack's ports first."""
    code = "import sys, bench.__main__; print('celeryref.settings' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.stdout.strip() == "False", run.stderr


def test_baseline_keeps_celery_defaults() -> None:
    """Only the URLs differ from a fresh Celery app; variants come from the environment."""
    app = baseline.create_baseline(env={})
    assert app.conf.worker_prefetch_multiplier == 4
    assert app.conf.task_acks_late is False
    assert app.conf.worker_disable_prefetch is False
    assert app.conf.task_default_queue == baseline.QUEUE
    assert app.conf.broker_url.endswith(f"/{baseline.BROKER_DB}")
    assert "bench.tasks.priority.ping" in app.tasks
    variant = baseline.create_baseline(
        env={"BENCH_ACKS_LATE": "1", "BENCH_PREFETCH": "1", "BENCH_DISABLE_PREFETCH": "1"}
    )
    assert variant.conf.task_acks_late is True
    assert variant.conf.worker_prefetch_multiplier == 1
    assert variant.conf.worker_disable_prefetch is True
