"""The compose file as Compose itself resolves it (``docker compose config``; no engine)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.support.compose import PYTHON_LONG_RUNNING, compose_config

PYTHON_SERVICES = ["migrate", *PYTHON_LONG_RUNNING]
WORKERS = {
    "worker": "default",
    "worker-cpu": "cpu_intensive",
    "worker-io": "io_intensive",
    "worker-priority": "priority",
    "worker-scheduled": "scheduled",
}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = compose_config()["services"]
    return found


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)([hms])", duration))


def test_topology_is_complete(services: dict[str, Any]) -> None:
    assert set(services) == {*PYTHON_SERVICES, "redis", "postgres", "mailsink"}


def test_one_image_for_every_python_service(services: dict[str, Any]) -> None:
    assert len({services[s]["image"] for s in [*PYTHON_SERVICES, "mailsink"]}) == 1
    assert all(services[s].get("init") for s in PYTHON_SERVICES)


def test_workers_scale(services: dict[str, Any]) -> None:
    """No fixed container name or host port on any worker (so --scale works)."""
    for name, queue in WORKERS.items():
        svc = services[name]
        assert "container_name" not in svc and not svc.get("ports"), name
        command = svc["command"]
        assert command[command.index("-Q") + 1] == queue
        assert command[command.index("-n") + 1] == f"{queue}@%h"


def test_redis_and_postgres_are_published_on_loopback_only(services: dict[str, Any]) -> None:
    for name in ("redis", "postgres"):
        assert [p["host_ip"] for p in services[name]["ports"]] == ["127.0.0.1"], name
    for svc in services.values():
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", svc


def test_nothing_runs_as_root(services: dict[str, Any]) -> None:
    """Python services run as the image's non-root user; redis/postgres as theirs."""
    assert services["redis"]["user"] == "redis"
    assert services["postgres"]["user"] == "postgres"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER celeryref$", dockerfile, re.M)
    assert not any(services[s].get("user") for s in PYTHON_SERVICES)


def test_a_stopping_worker_requeues_what_it_cannot_finish_before_the_sigkill(
    services: dict[str, Any],
) -> None:
    """SIGTERM starts the soft shutdown (REMAP_SIGTERM=SIGQUIT); its window ends, and the
    cold shutdown requeues unfinished tasks, well before Docker's SIGKILL."""
    for name in WORKERS:
        env = services[name]["environment"]
        assert env["REMAP_SIGTERM"] == "SIGQUIT", name
        window = float(env["WORKER_SOFT_SHUTDOWN_TIMEOUT"])
        assert window > 0
        assert seconds(services[name]["stop_grace_period"]) >= window + 20, name


def test_only_workers_wait_out_a_redis_restart_when_storing_results(
    services: dict[str, Any],
) -> None:
    """F16: a worker retries a result store through a Redis restart; the API does not
    (it answers 503 at once)."""
    for name in WORKERS:
        assert int(services[name]["environment"]["RESULT_STORE_RETRIES"]) >= 10, name
    assert "RESULT_STORE_RETRIES" not in services["app"]["environment"]


def test_python_services_wait_for_the_schema(services: dict[str, Any]) -> None:
    for name in PYTHON_SERVICES:
        deps = services[name]["depends_on"]
        if name == "migrate":
            assert deps["postgres"]["condition"] == "service_healthy"
        else:
            assert deps["migrate"]["condition"] == "service_completed_successfully"
            assert deps["redis"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        if name != "migrate":
            assert svc["healthcheck"]["test"], name
            assert svc["restart"] == "unless-stopped", name


def test_redis_is_password_protected_and_persistent(services: dict[str, Any]) -> None:
    command = " ".join(services["redis"]["command"])
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    assert "--appendonly yes" in command and "noeviction" in command
    assert services["redis"]["volumes"][0]["target"] == "/data"


def test_redis_has_a_memory_limit_and_never_evicts(services: dict[str, Any]) -> None:
    """F19: noeviction refuses writes only under a maxmemory; without one Redis grows
    until the kernel kills it."""
    command = " ".join(services["redis"]["command"])
    limit = re.search(r'--maxmemory "?(\d+[kmg]b)"?(?:\s|$)', command)
    assert limit is not None, command
    assert limit.group(1) == "512mb"  # REDIS_MAXMEMORY's default
    assert re.search(r"--maxmemory-policy noeviction(?:\s|$)", command), command
