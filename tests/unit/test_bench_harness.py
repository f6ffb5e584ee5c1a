"""The benchmark harness: its own ports and compose commands, settings read only once
pointed there, the memory summary it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bench import baseline, stack
from bench.mapreduce import stack as mapreduce_stack
from devtools.harness import ContainerMemory
from tests.conftest import ROOT


def recorded(monkeypatch: pytest.MonkeyPatch, project: Any) -> list[tuple[list[str], Any]]:
    """The (argv after ``docker compose -p P -f ... -f ...``, env) of each command run."""
    calls: list[tuple[list[str], Any]] = []
    skip = 4 + 2 * len(project.files)

    def run(argv: list[str], timeout: Any = None, env: Any = None) -> Any:
        calls.append((argv[skip:], env))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(project, "run", run)
    return calls


def pinging(*nodes: str) -> Any:
    """A Celery app stand-in whose workers ``nodes`` answer a ping."""
    return SimpleNamespace(control=SimpleNamespace(ping=lambda timeout: [{n: {}} for n in nodes]))


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
    assert app.conf.task_track_started is False


def test_the_guarded_baseline_has_the_spec_guarantees_on_its_own_queue() -> None:
    """acks_late, prefetch 1 and STARTED stored, consumed from a queue of its own."""
    guarded = baseline.create_baseline(env=baseline.GUARDED)
    assert guarded.conf.task_acks_late is True
    assert guarded.conf.worker_prefetch_multiplier == 1
    assert guarded.conf.task_track_started is True
    assert guarded.conf.task_default_queue not in (baseline.QUEUE, "default")
    assert guarded.conf.broker_url == baseline.create_baseline(env={}).conf.broker_url
    services = yaml.safe_load((ROOT / stack.OVERRIDE).read_text())["services"]
    worker_env = services["worker-baseline-guarded"]["environment"]
    assert {k: worker_env[k] for k in baseline.GUARDED} == baseline.GUARDED


def test_bench_stack_runs_its_project_with_the_bench_profiles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Project celeryref-bench with the bench override; up builds and waits 600 s (command
    1800 s) with the baseline worker; down removes the tuned worker too."""
    bench = stack.BenchStack(control=pinging(), baseline_control=pinging())
    assert bench.compose_command()[:8] == [
        "docker", "compose", "-p", "celeryref-bench",
        "-f", "docker-compose.yml", "-f", "docker/bench/compose.bench.yml",
    ]  # fmt: skip
    calls = recorded(monkeypatch, bench)
    bench.up()
    bench.up(build=False)
    bench.down()
    assert [argv for argv, _ in calls] == [
        ["--profile", "bench", "up", "-d", "--wait", "--wait-timeout", "600", "--build"],
        ["--profile", "bench", "up", "-d", "--wait", "--wait-timeout", "600"],
        ["--profile", "bench", "--profile", "bench-tuned", "down", "-v", "--remove-orphans"],
    ]


def test_restart_with_gives_the_env_to_compose_not_to_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The recreated worker gets ``env``; this process's environment stays as it was."""
    monkeypatch.delenv("BASELINE_ACKS_LATE", raising=False)
    bench = stack.BenchStack(control=pinging(), baseline_control=pinging("baseline@c1"))
    calls = recorded(monkeypatch, bench)
    assert bench.restart_with("worker-baseline", {"BASELINE_ACKS_LATE": "1"}) == "baseline@c1"
    ((argv, env),) = calls
    assert argv[:2] == ["--profile", "bench"]
    assert argv[-2:] == ["--force-recreate", "worker-baseline"]
    assert env["BASELINE_ACKS_LATE"] == "1"
    assert "BASELINE_ACKS_LATE" not in bench.env
    assert "BASELINE_ACKS_LATE" not in os.environ


def test_mapreduce_memory_summary_keeps_its_json_keys() -> None:
    """docs/benchmarks/mapreduce.json: the largest peaks, and every container's reading."""
    readings = [ContainerMemory("c1", 300.04, 80.0), ContainerMemory("c2", None, 95.06)]
    assert mapreduce_stack.summarize_memory(readings) == {
        "worker_container_peak_mib": 300.0,
        "process_peak_mib": 95.1,
        "workers": [
            {"container": "c1", "container_peak_mib": 300.04, "process_peak_mib": 80.0},
            {"container": "c2", "container_peak_mib": None, "process_peak_mib": 95.06},
        ],
    }


def test_point_at_stack_takes_secrets_from_env_file_unless_set(tmp_path: Path) -> None:
    """Secrets the environment lacks come from ``.env``; clients use the loopback ports."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("REDIS_PASSWORD=from-file\nPOSTGRES_USER=file-user\nOTHER=x\n")
    env = {"POSTGRES_USER": "mine", "REDIS_HOST_PORT": "16379"}
    mapreduce_stack.point_at_stack(env, dotenv)
    assert env == {
        "POSTGRES_USER": "mine",
        "REDIS_PASSWORD": "from-file",
        "REDIS_HOST_PORT": "16379",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "16379",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
    }
