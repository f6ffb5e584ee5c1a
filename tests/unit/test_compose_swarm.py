"""compose.swarm.yml rendered for ``docker stack deploy`` (scripts/swarm_stack.py) with its
default values: what the stack loader accepts, and the Swarm policy (issue 18). No engine,
no swarm: ``docker compose config`` and ``docker stack config`` only read files."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from scripts.swarm_stack import port, size_bytes, tmpfs_mount, to_stack
from tests.conftest import missing
from tests.support import compose as support_compose

WORKERS = support_compose.WORKERS
LONG_RUNNING = ("redis", "postgres", *support_compose.PYTHON_LONG_RUNNING)
SECRET_VARIABLES = {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN", "FLOWER_BASIC_AUTH"}
#: The tmpfs every read-only task writes to (a path inside the containers).
TMP = "/tmp"  # noqa: S108


def compose_config(*files: str, secrets: Path) -> dict[str, Any]:
    """``docker compose config`` of ``files``, interpolated from the defaults and ``.env``
    only (not from this test process's settings variables)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/"),
        "SECRETS_DIR": str(secrets),
    }
    return support_compose.compose_config(*files, env=env, project="celeryref")


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secrets")


@pytest.fixture(scope="module")
def stack(secrets: Path) -> dict[str, Any]:
    files = ("docker-compose.yml", "compose.prod.yml", "compose.swarm.yml")
    return to_stack(compose_config(*files, secrets=secrets))


@pytest.fixture(scope="module")
def services(stack: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = stack["services"]
    return result


def seconds(duration: str) -> float:
    """A Go duration as Compose prints it (``1m30s``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * unit[u] for n, u in parts)


def test_docker_stack_deploy_reads_the_rendered_file_and_ignores_nothing(
    stack: dict[str, Any],
) -> None:
    """The stack loader (``docker stack config``) accepts it without dropping an option."""
    run = subprocess.run(
        ["docker", "stack", "config", "-c", "-"],
        input=json.dumps(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode != 0 and "unknown command" in run.stderr:
        missing("docker CLI without `stack`")
    assert run.returncode == 0, run.stderr
    assert "Ignoring" not in run.stderr, run.stderr


def test_every_service_uses_dns_round_robin_and_publishes_in_host_mode(
    services: dict[str, Any],
) -> None:
    """No virtual IP and no routing mesh: both need IPVS (compose.swarm.yml)."""
    assert set(services) == {*LONG_RUNNING, "migrate"}
    for name, svc in services.items():
        assert svc["deploy"]["endpoint_mode"] == "dnsrr", name
        for published in svc.get("ports", []):
            assert published["mode"] == "host" and isinstance(published["published"], int)
    assert {n for n, s in services.items() if s.get("ports")} == {"app", "flower"}


def test_updates_replace_one_task_at_a_time_stopping_it_first(services: dict[str, Any]) -> None:
    """Every long-running service: parallelism 1, stop-first, rolled back on failure."""
    for name in LONG_RUNNING:
        deploy = services[name]["deploy"]
        update = deploy["update_config"]
        assert (update["parallelism"], update["order"]) == (1, "stop-first"), name
        assert update["failure_action"] == "rollback" and seconds(update["monitor"]) > 0, name
        assert deploy["rollback_config"]["order"] == "stop-first", name
        assert deploy["restart_policy"]["condition"] == "any", name


def test_a_worker_is_killed_only_after_its_soft_shutdown_window(services: dict[str, Any]) -> None:
    """stop_grace_period outlasts WORKER_SOFT_SHUTDOWN_TIMEOUT: a stopped worker cancels
    and requeues its tasks itself, a SIGKILL never strands them."""
    for name in WORKERS:
        svc = services[name]
        window = float(svc["environment"]["WORKER_SOFT_SHUTDOWN_TIMEOUT"])
        assert seconds(svc["stop_grace_period"]) >= window + 15, name


def test_one_beat_and_the_data_services_are_placed_by_node_label(
    services: dict[str, Any],
) -> None:
    for name in ("redis", "postgres", "beat"):
        constraints = services[name]["deploy"]["placement"]["constraints"]
        assert constraints == [f"node.labels.celeryref.{name} == true"], name
    assert services["beat"]["deploy"]["replicas"] == 1
    assert all(services[w]["deploy"]["replicas"] >= 1 for w in WORKERS)


def test_migrate_runs_once_per_deploy_as_a_job(services: dict[str, Any]) -> None:
    deploy = services["migrate"]["deploy"]
    assert deploy["mode"] == "replicated-job"
    assert deploy["restart_policy"]["condition"] == "on-failure"


def test_limits_are_the_production_profiles(services: dict[str, Any], secrets: Path) -> None:
    """cpus / mem_limit / pids_limit of compose.prod.yml, as deploy.resources.limits."""
    prod = compose_config("docker-compose.yml", "compose.prod.yml", secrets=secrets)["services"]
    for name in (*LONG_RUNNING, "migrate"):
        limits = services[name]["deploy"]["resources"]["limits"]
        expected = prod[name]
        assert limits["memory"] == expected["mem_limit"], name
        assert float(limits["cpus"]) == float(expected["cpus"]), name
        assert limits["pids"] == expected["pids_limit"], name


def test_secrets_are_swarm_secrets_read_through_file_variables(stack: dict[str, Any]) -> None:
    """Each ``*_FILE`` variable names a secret the service mounts; no secret variable."""
    for name, svc in stack["services"].items():
        env = svc.get("environment", {})
        assert not SECRET_VARIABLES & env.keys(), name
        mounted = {s["target"] for s in svc.get("secrets", [])}
        files = {v for k, v in env.items() if k.endswith("_FILE")}
        assert files <= mounted, name
        assert {s["source"] for s in svc.get("secrets", [])} <= stack["secrets"].keys(), name
    assert all("name" not in s for s in stack["secrets"].values())


def test_a_read_only_task_writes_to_a_tmpfs_mount(services: dict[str, Any]) -> None:
    """Swarm ignores ``tmpfs:``; the renderer turns it into a mount of the same size."""
    for name, svc in services.items():
        assert svc["read_only"] is True and "tmpfs" not in svc, name
        mounts = {v["target"]: v for v in svc["volumes"] if v["type"] == "tmpfs"}
        assert mounts[TMP]["tmpfs"]["size"] == 64 * 2**20, name


def test_the_network_is_an_attachable_overlay(stack: dict[str, Any]) -> None:
    assert stack["networks"] == {"default": {"driver": "overlay", "attachable": True, "ipam": {}}}


def test_renderer_conversions() -> None:
    assert size_bytes("64m") == 64 * 2**20 and size_bytes("1g") == 2**30
    assert tmpfs_mount("/run:size=1m,mode=1777") == {
        "type": "tmpfs",
        "target": "/run",
        "tmpfs": {"size": 2**20},
    }
    with pytest.raises(ValueError, match="no Swarm equivalent"):
        tmpfs_mount(f"{TMP}:mode=0700")
    assert port({"host_ip": "127.0.0.1", "published": "8000", "target": 8000, "mode": "host"}) == {
        "published": 8000,
        "target": 8000,
        "mode": "host",
    }
