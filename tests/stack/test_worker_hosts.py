"""Extra worker hosts (issue 18): ``compose.workers.yml`` joins a primary by address, over TLS.

Two compose projects on this machine, as two hosts would be. The primary
(``celeryref-tlsprimary``: docker-compose.yml + compose.tls.yml, port offset 31000) runs
Redis TLS-only and Postgres refusing TCP without TLS, both published on the Docker
bridge's gateway address only, with its API, beat and Flower and **no worker at all**. The
second project (``celeryref-tlsworkers``: compose.workers.yml) has its own network and
dials the primary as ``host.docker.internal`` (the gateway, a name in the server
certificate) on the published ports: whatever runs a task ran on the "other host".
Certificates come from scripts/tls-certs.sh in a temporary directory; the app image is
built under a tag of its own. Both projects are removed after, unless ``KEEP_STACK=1``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis
from celery import Celery

from celeryref import queues
from devtools.harness import ComposeError, ComposeProject
from tests.conftest import DOTENV, ROOT, docker_compose_available, missing

#: Added to every default host port of the primary (6379 -> 37379, ...).
PORT_OFFSET = 31_000
REDIS_PORT = str(6379 + PORT_OFFSET)
POSTGRES_PORT = str(5432 + PORT_OFFSET)
APP_PORT = str(8000 + PORT_OFFSET)
#: The name the second project dials; scripts/tls-certs.sh puts it in the certificate.
REMOTE_NAME = "host.docker.internal"
IMAGE = "celeryref/app:workerhosts"
#: The primary without its workers: every task must be run by the second project.
PRIMARY_SERVICES = ("redis", "postgres", "migrate", "app", "beat", "flower")
WORKER_SERVICES = ("worker", "worker-cpu", "worker-io", "worker-priority", "worker-scheduled")

#: One task per queue (module path = queue) and the worker service that consumes it. The
#: priority health check also pings Redis with the app's own client (adapters.redis_state)
#: and writes to Postgres; the fetch goes to the primary's API through its published port.
TASKS: dict[str, tuple[str, list[Any], str]] = {
    queues.DEFAULT: ("default.add", [2, 3], "worker"),
    queues.CPU_INTENSIVE: ("cpu_intensive.long_task", [3, 1000], "worker-cpu"),
    queues.IO_INTENSIVE: (
        "io_intensive.fetch_url",
        [f"http://{REMOTE_NAME}:{APP_PORT}/healthz"],
        "worker-io",
    ),
    queues.PRIORITY: ("priority.health_check", [], "worker-priority"),
    queues.SCHEDULED: ("scheduled.beat_heartbeat", ["worker-hosts-test"], "worker-scheduled"),
}

#: Run in a worker container with its own settings: each client's connection outcome.
CONNECTION_PROBE = """
import json, psycopg2
from celeryref.adapters import redis_state
from celeryref.celery_app import app
from celeryref.settings import settings
probes = {
    "broker": lambda: app.connection_for_write().ensure_connection(max_retries=0),
    "results": lambda: app.backend.client.ping(),
    "state": lambda: redis_state.client().ping(),
    "postgres": lambda: psycopg2.connect(settings.database_dsn, connect_timeout=5).close(),
}
out = {}
for name, probe in probes.items():
    try:
        probe()
        out[name] = "ok"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


@dataclass
class Hosts:
    """The primary, the worker project, and what the test process dials them with."""

    primary: ComposeProject
    workers: ComposeProject
    #: The Docker bridge's gateway: where the primary publishes, what REMOTE_NAME resolves to.
    gateway: str
    ca_file: Path

    def settings_env(self) -> dict[str, str]:
        """Settings of a client on this machine, over TLS to the published ports."""
        return {
            "APP_ENV": "test",
            "REDIS_HOST": self.gateway,
            "REDIS_PORT": REDIS_PORT,
            "REDIS_PASSWORD": DOTENV["REDIS_PASSWORD"],
            "REDIS_TLS": "true",
            "REDIS_TLS_CA_FILE": str(self.ca_file),
            "POSTGRES_HOST": self.gateway,
            "POSTGRES_PORT": POSTGRES_PORT,
            "POSTGRES_USER": DOTENV["POSTGRES_USER"],
            "POSTGRES_PASSWORD": DOTENV["POSTGRES_PASSWORD"],
            "POSTGRES_DB": DOTENV["POSTGRES_DB"],
            "POSTGRES_SSLMODE": "verify-full",
            "POSTGRES_SSLROOTCERT": str(self.ca_file),
        }

    def celery(self) -> Celery:
        from celeryref.celery_app import create_app
        from celeryref.settings import load_settings

        return create_app(load_settings(self.settings_env()))

    def postgres(self, **options: str) -> Any:
        env = self.settings_env()
        return psycopg2.connect(
            host=self.gateway,
            port=POSTGRES_PORT,
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            dbname=env["POSTGRES_DB"],
            connect_timeout=5,
            **options,
        )

    def probe_connections(self, ca_file: Path) -> dict[str, str]:
        """:data:`CONNECTION_PROBE` in a one-off container of the worker project whose
        mounted CA is ``ca_file``."""
        out = self.workers.compose(
            "run",
            "--rm",
            "--no-deps",
            "-T",
            "worker",
            "python",
            "-c",
            CONNECTION_PROBE,
            env={"TLS_CA_FILE": str(ca_file)},
            timeout=120,
        )
        result: dict[str, str] = json.loads(out.strip().splitlines()[-1])
        return result


def bridge_gateway() -> str:
    """The default bridge's gateway address (Docker's ``host-gateway``): the one its IPAM
    config names, else the first address of its subnet, which is where Docker puts the
    gateway when none is configured (some engines then leave the field out)."""
    run = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    configs = json.loads(run.stdout or "null") if run.returncode == 0 else None
    for config in configs or []:
        if config.get("Gateway"):
            return str(config["Gateway"])
        subnet = ipaddress.ip_network(config.get("Subnet") or "::/128")
        if subnet.version == 4 and subnet.num_addresses > 2:
            return str(next(subnet.hosts()))
    missing(f"no default Docker bridge to publish on: {run.stderr.strip() or run.stdout}")
    raise AssertionError("unreachable")


def certificates(directory: Path, *names: str) -> Path:
    subprocess.run(
        ["bash", "scripts/tls-certs.sh", str(directory), *names],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return directory / "ca.crt"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    """The TLS primary without workers, then the worker project, both healthy."""
    if not docker_compose_available():
        missing("no Docker engine with the compose plugin")
    gateway = bridge_gateway()
    tls = tmp_path_factory.mktemp("tls")
    ca_file = certificates(tls, REMOTE_NAME, gateway)
    secrets = tmp_path_factory.mktemp("secrets")
    for name, variable in [
        ("redis_worker_password", "REDIS_PASSWORD"),
        ("postgres_app_password", "POSTGRES_PASSWORD"),
    ]:
        (secrets / name).write_text(DOTENV[variable])
    common = {**os.environ, "APP_IMAGE": IMAGE, "HEALTHCHECK_INTERVAL": "5s"}
    primary = ComposeProject(
        "celeryref-tlsprimary",
        ("docker-compose.yml", "compose.tls.yml"),
        env={
            **common,
            "TLS_DIR": str(tls),
            "REDIS_HOST_PORT": REDIS_PORT,
            "POSTGRES_HOST_PORT": POSTGRES_PORT,
            "APP_HOST_PORT": APP_PORT,
            "FLOWER_HOST_PORT": str(5555 + PORT_OFFSET),
            "MAILSINK_HOST_PORT": str(8025 + PORT_OFFSET),
            # Reachable from other Docker networks (as from other hosts), not from outside.
            "REDIS_BIND": gateway,
            "POSTGRES_BIND": gateway,
            "APP_BIND": gateway,
        },
        wait_timeout=180,
    )
    workers = ComposeProject(
        "celeryref-tlsworkers",
        ("compose.workers.yml",),
        env={
            **common,
            "REDIS_HOST": REMOTE_NAME,
            "REDIS_PORT": REDIS_PORT,
            "POSTGRES_HOST": REMOTE_NAME,
            "POSTGRES_PORT": POSTGRES_PORT,
            "TLS_CA_FILE": str(ca_file),
            "SECRETS_DIR": str(secrets),
            "EGRESS_ALLOWED_HOSTS": f"{REMOTE_NAME}:{APP_PORT}",
        },
        wait_timeout=180,
    )
    h = Hosts(primary, workers, gateway, ca_file)
    workers.down(check=False)
    primary.down(check=False)
    try:
        # Its own tag: rebuilding celeryref/app:latest would recreate the stack tier's
        # containers at its next `up` (tests/stack/test_prod_profile.py).
        primary.compose("build", "migrate")
        for project, services in [(primary, PRIMARY_SERVICES), (workers, ())]:
            try:
                project.up(*services)
            except ComposeError:
                print(project.compose("logs", "--no-color", "--tail", "60", check=False))  # noqa: T201
                raise
        yield h
    finally:
        if not os.environ.get("KEEP_STACK"):
            workers.down(check=False)
            primary.down(check=False)


def test_the_primary_runs_no_worker_and_the_worker_project_shares_no_network(
    hosts: Hosts,
) -> None:
    """Given both projects up, the primary has no worker container and the worker
    containers sit on their own network only: published ports are their one way in."""
    assert {row["Service"] for row in hosts.primary.containers()} == set(PRIMARY_SERVICES)
    rows = hosts.workers.containers()
    assert sorted(row["Service"] for row in rows) == sorted(WORKER_SERVICES)
    assert all(row["Health"] == "healthy" for row in rows), rows
    for row in rows:
        info = json.loads(hosts.workers.docker("inspect", row["ID"]))[0]
        assert set(info["NetworkSettings"]["Networks"]) == {"celeryref-tlsworkers_default"}


def test_every_queue_is_served_by_the_other_hosts_workers(hosts: Hosts) -> None:
    """A task sent to each queue (over TLS, from this machine) completes, run by the
    worker project's container of that queue's service."""
    app = hosts.celery()
    sent = {
        q: app.send_task(f"{queues.TASK_PACKAGE}.{task}", args=args)
        for q, (task, args, _) in TASKS.items()
    }
    services = {row["ID"]: row["Service"] for row in hosts.workers.containers()}
    for queue, result in sent.items():
        result.get(timeout=60)
        node, _, host = str(result.worker).partition("@")
        ran_on = [service for cid, service in services.items() if cid.startswith(host)]
        assert node == queue and ran_on == [TASKS[queue][2]], (queue, result.worker, services)


def test_every_postgres_connection_over_tcp_is_encrypted(hosts: Hosts) -> None:
    """Each TCP session Postgres holds (the worker project's pools among them: each pool
    process opens one at start) is TLS."""
    conn = hosts.postgres(sslmode="verify-full", sslrootcert=str(hosts.ca_file))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT a.application_name, s.ssl FROM pg_stat_activity a"
                " JOIN pg_stat_ssl s USING (pid) WHERE a.client_addr IS NOT NULL"
            )
            sessions = cur.fetchall()
    finally:
        conn.close()
    assert any(name.startswith("celeryref:") for name, _ in sessions), sessions
    assert all(ssl for _, ssl in sessions), sessions


def test_a_worker_with_another_ca_is_refused_by_every_client(hosts: Hosts, tmp_path: Path) -> None:
    """The same worker container with the right CA connects everywhere; with a CA that
    did not sign the servers' certificate, the broker, result, state and Postgres
    clients all fail certificate verification."""
    assert hosts.probe_connections(hosts.ca_file) == dict.fromkeys(
        ("broker", "results", "state", "postgres"), "ok"
    )
    wrong = hosts.probe_connections(certificates(tmp_path / "other-ca", REMOTE_NAME))
    assert set(wrong) == {"broker", "results", "state", "postgres"}
    for client, outcome in wrong.items():
        assert "certificate verify failed" in outcome.lower(), (client, outcome)


def test_plain_connections_to_the_published_ports_are_refused(hosts: Hosts) -> None:
    """Without TLS, Redis drops the connection and Postgres refuses the session."""
    client = redis.Redis(
        host=hosts.gateway,
        port=int(REDIS_PORT),
        password=DOTENV["REDIS_PASSWORD"],
        socket_timeout=5,
        socket_connect_timeout=5,
    )
    with pytest.raises(redis.ConnectionError):
        client.ping()
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        hosts.postgres(sslmode="disable")
