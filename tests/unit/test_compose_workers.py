"""compose.workers.yml runs docker-compose.yml's workers, and compose.tls.yml turns TLS on
for every client and server (``docker compose config``; no engine)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.support.compose import compose_config

WORKERS = ("worker", "worker-cpu", "worker-io", "worker-priority", "worker-scheduled")
PYTHON_CLIENTS = ("migrate", "app", *WORKERS, "beat", "flower")
#: Read by the API or beat only: a worker host is not given them.
PRIMARY_ONLY = {"API_TOKEN", "API_MAX_BODY_BYTES", "BEAT_HEARTBEAT_SECONDS", "HEALTH_CHECK_SECONDS"}
#: Differ by design on a worker host: addresses, secrets as files, no mail sink.
WORKER_HOST_OWN = {
    "REDIS_HOST",
    "POSTGRES_HOST",
    "REDIS_PASSWORD",
    "POSTGRES_PASSWORD",
    "SMTP_HOST",
    "ALERT_EMAIL_TO",
}
TLS_ENV = {
    "REDIS_TLS": "true",
    "REDIS_TLS_CA_FILE": "/etc/celeryref/tls/ca.crt",
    "POSTGRES_SSLMODE": "verify-full",
    "POSTGRES_SSLROOTCERT": "/etc/celeryref/tls/ca.crt",
}


def config(*files: str) -> dict[str, Any]:
    """The services of ``files`` as Compose resolves them, with this process's settings
    variables (tests/conftest.py) left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "POSTGRES_"))}
    env.update(REDIS_HOST="broker.example.org", POSTGRES_HOST="db.example.org")
    services: dict[str, Any] = compose_config(*files, env=env)["services"]
    return services


@pytest.fixture(scope="module")
def primary() -> dict[str, Any]:
    return config("docker-compose.yml")


@pytest.fixture(scope="module")
def extra() -> dict[str, Any]:
    return config("compose.workers.yml")


@pytest.fixture(scope="module")
def tls() -> dict[str, Any]:
    return config("docker-compose.yml", "compose.tls.yml")


def test_the_worker_file_holds_the_workers_only(extra: dict[str, Any]) -> None:
    assert sorted(extra) == sorted(WORKERS)


@pytest.mark.parametrize("service", WORKERS)
def test_a_worker_host_runs_what_the_primary_runs(
    primary: dict[str, Any], extra: dict[str, Any], service: str
) -> None:
    """Same image, command, healthcheck, grace period, volume targets; the environment of
    docker-compose.yml's worker minus what only the API and beat read, the same values."""
    ours, theirs = extra[service], primary[service]
    for key in ("image", "command", "init", "stop_grace_period"):
        assert ours[key] == theirs[key], key
    assert ours["healthcheck"]["test"] == theirs["healthcheck"]["test"]
    assert [v["target"] for v in ours.get("volumes", [])] == [
        v["target"] for v in theirs.get("volumes", [])
    ]
    shared = set(theirs["environment"]) - PRIMARY_ONLY - WORKER_HOST_OWN
    assert shared <= set(ours["environment"]), shared - set(ours["environment"])
    assert {k: ours["environment"][k] for k in shared} == {
        k: theirs["environment"][k] for k in shared
    }


@pytest.mark.parametrize("service", WORKERS)
def test_a_worker_host_dials_by_address_over_tls_with_secret_files(
    extra: dict[str, Any], service: str
) -> None:
    env = extra[service]["environment"]
    assert env["REDIS_HOST"] == "broker.example.org" and env["POSTGRES_HOST"] == "db.example.org"
    assert {k: env[k] for k in TLS_ENV} == TLS_ENV
    assert "REDIS_PASSWORD" not in env and "POSTGRES_PASSWORD" not in env
    assert env["REDIS_PASSWORD_FILE"].startswith("/run/secrets/")
    assert env["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    assert "depends_on" not in extra[service]


@pytest.mark.parametrize("service", PYTHON_CLIENTS)
def test_the_tls_override_turns_tls_on_for_every_client(tls: dict[str, Any], service: str) -> None:
    assert {k: tls[service]["environment"][k] for k in TLS_ENV} == TLS_ENV
    assert [c["target"] for c in tls[service]["configs"]] == ["/etc/celeryref/tls/ca.crt"]


def test_the_tls_override_leaves_no_plain_listener(tls: dict[str, Any]) -> None:
    """Redis listens on TLS only; Postgres's pg_hba refuses TCP without TLS."""
    redis_command = " ".join(tls["redis"]["command"])
    assert "--port 0 --tls-port 6379" in redis_command
    assert "--tls-ca-cert-file" in redis_command
    assert "hba_file=/etc/celeryref/tls/pg_hba.conf" in tls["postgres"]["command"]
    assert "ssl=on" in tls["postgres"]["command"]
    hba = (ROOT / "docker" / "tls" / "pg_hba.conf").read_text().splitlines()
    rules = [line.split() for line in hba if line.strip() and not line.startswith("#")]
    assert ["hostnossl", "all", "all", "all", "reject"] in rules
    assert all(rule[0] in {"local", "hostssl", "hostnossl"} for rule in rules), rules
