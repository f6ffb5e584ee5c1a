"""Swarm tier: the production profile as a Docker Swarm stack on a single-node swarm
(``compose.swarm.yml``, issue 18).

It runs LAST in ``make test``: entering and leaving Swarm mode breaks name resolution on
bridge networks created before, so a compose project left running meanwhile must be
recreated (``down``, then ``up``); every other tier removes its project first
(``tests/stack``) or reaches its services through host ports only (``tests/integration``).

The ``swarm`` fixture, once per session:

1. refuses a swarm this tier did not make (active, advertised elsewhere than 127.0.0.1,
   or running other services); leaves one a crashed run of this tier left behind, and
   removes that run's containers and volumes;
2. builds ``celeryref/app:swarmtest`` from the Dockerfile (never ``:latest``, which the
   stack tier runs) and writes fresh secrets (``scripts/prod-secrets.sh``);
3. ``docker swarm init --advertise-addr 127.0.0.1``, labels the node for Redis, Postgres
   and beat;
4. renders the files (``docker compose config`` | ``scripts/swarm_stack.py``), deploys
   stack ``celeryref-swarmtest`` and waits until every service converges;

and afterwards, also after a failure, removes the stack with its containers and volumes
and leaves the swarm, then checks that ``docker info`` says Swarm is inactive.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.harness import ComposeError, ComposeProject
from scripts.swarm_stack import to_stack
from tests.conftest import ROOT, missing, wait_for

STACK = "celeryref-swarmtest"
IMAGE = "celeryref/app:swarmtest"
FILES = (
    "docker-compose.yml",
    "compose.prod.yml",
    "compose.swarm.yml",
    "tests/swarm/compose.swarmtest.yml",
)
#: Shortened soft-shutdown window and grace period (60 s and 90 s by default).
SOFT_SHUTDOWN_SECONDS = 10
STOP_GRACE_SECONDS = 30
SWARM_ENV = {
    "APP_IMAGE": IMAGE,
    # Host mode publishes on every address: ports of their own, free on a CI machine.
    "APP_HOST_PORT": "38000",
    "FLOWER_HOST_PORT": "35555",
    # A successor task counts as started once healthy: the first check comes after this.
    "HEALTHCHECK_INTERVAL": "5s",
    "WORKER_SOFT_SHUTDOWN_TIMEOUT": str(SOFT_SHUTDOWN_SECONDS),
    "WORKER_STOP_GRACE_PERIOD": f"{STOP_GRACE_SECONDS}s",
    "SWARM_UPDATE_MONITOR": "5s",
    "EXTRA_TASK_PACKAGES": "devtools.tasks",
    "EGRESS_ALLOWED_HOSTS": "app:8000",
    "SMTP_HOST": "mailsink",
}
WORKERS = ("worker", "worker-cpu", "worker-io", "worker-priority", "worker-scheduled")
LONG_RUNNING = ("redis", "postgres", "app", *WORKERS, "beat", "flower", "mailsink")
NODE_LABELS = ("celeryref.redis=true", "celeryref.postgres=true", "celeryref.beat=true")
#: Label Swarm puts on every container, volume and network of a stack.
NAMESPACE = f"label=com.docker.stack.namespace={STACK}"


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    run = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and run.returncode != 0:
        raise ComposeError(f"docker {' '.join(args)[:200]} failed: {run.stderr[-2000:]}")
    return run.stdout


@dataclass
class Swarm(ComposeProject):
    """The stack: its services, containers and the app container's Python."""

    project: str = STACK
    files: tuple[str, ...] = FILES
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, **SWARM_ENV})
    secrets: Path = Path()
    #: Seconds from `docker stack deploy` to every service converged.
    startup_seconds: float = 0.0

    def render(self, out: Path) -> Path:
        """The stack file: the Compose files merged, then converted for Swarm."""
        config = json.loads(self.compose("--profile", "dev", "config", "--format", "json"))
        out.write_text(json.dumps(to_stack(config), indent=2))
        return out

    def service(self, name: str) -> str:
        return f"{STACK}_{name}"

    def replicas(self) -> dict[str, str]:
        """``docker service ls`` REPLICAS per service (``1/1``, ``0/1 (1/1 completed)``)."""
        out = docker("service", "ls", "--filter", NAMESPACE, "--format", "{{json .}}")
        rows = [json.loads(line) for line in out.splitlines()]
        return {r["Name"].removeprefix(f"{STACK}_"): r["Replicas"] for r in rows}

    def containers(self, service: str | None = None) -> list[str]:
        """Ids of the running containers of ``service`` (of every service)."""
        scope = f"label=com.docker.swarm.service.name={self.service(service)}"
        label = scope if service else NAMESPACE
        return docker(
            "ps", "-q", "--no-trunc", "--filter", label, "--filter", "status=running"
        ).split()

    def inspect(self, container: str) -> dict[str, Any]:
        info: dict[str, Any] = json.loads(docker("inspect", container))[0]
        return info

    def converged(self) -> bool:
        """Every long-running service at its replica count with every container healthy,
        the migrate job completed."""
        replicas = self.replicas()
        if not replicas.get("migrate", "").endswith("(1/1 completed)"):
            return False
        for service in LONG_RUNNING:
            running, _, desired = replicas.get(service, "0/?").partition("/")
            if running != desired:
                return False
            for container in self.containers(service):
                if self.inspect(container)["State"]["Health"]["Status"] != "healthy":
                    return False
        return True

    def wait_converged(self, timeout: float = 300) -> None:
        try:
            wait_for(self.converged, timeout, f"every service of {STACK} to converge", every=2)
        except pytest.fail.Exception:
            print(docker("service", "ls", "--filter", NAMESPACE))  # noqa: T201
            for container in self.containers():
                health = self.inspect(container)["State"].get("Health") or {}
                if health.get("Status", "healthy") != "healthy":
                    last = (health.get("Log") or [{}])[-1].get("Output", "")
                    logs = self.run(["docker", "logs", "--tail", "15", container])
                    print(f"{container[:12]} {health['Status']}: {last}{logs.stderr}")  # noqa: T201
            raise

    def python(self, *argv: str, timeout: float = 300) -> str:
        """``python ARGV`` in the app's container, with its settings and secrets; stdout."""
        (app, *_) = self.containers("app")
        return docker("exec", app, "python", *argv, timeout=timeout)

    def update_state(self, service: str) -> str:
        form = "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}"
        return docker("service", "inspect", "--format", form, self.service(service)).strip()


def swarm_state() -> tuple[str, str]:
    """(LocalNodeState, NodeAddr) of this engine: ``inactive``, ``active`` ..."""
    out = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.NodeAddr}}")
    state, _, addr = out.strip().partition(" ")
    return state, addr


def leave_and_clean() -> None:
    """Remove the stack, its containers and volumes, leave the swarm (idempotent)."""
    if swarm_state()[0] != "inactive":
        docker("stack", "rm", STACK, check=False)
    docker("swarm", "leave", "--force", check=False)

    def gone() -> bool:
        left = docker("ps", "-aq", "--filter", NAMESPACE).split()
        if left:  # exited task containers stay after `leave`
            docker("rm", "-f", *left, check=False)
        return not left

    wait_for(gone, 60, f"the containers of {STACK} to be gone", every=1)
    volumes = docker("volume", "ls", "-q", "--filter", NAMESPACE).split()
    if volumes:
        docker("volume", "rm", *volumes)
    # Swarm's bridge to the outside; `swarm init` made it, `leave` keeps it.
    docker("network", "rm", "docker_gwbridge", check=False)


def claim_engine() -> None:
    """Make the engine swarm-free, leaving only a swarm this tier left behind."""
    state, addr = swarm_state()
    if state != "inactive":
        names = docker("service", "ls", "--format", "{{.Name}}", check=False).split()
        foreign = [n for n in names if not n.startswith(f"{STACK}_")]
        if addr != "127.0.0.1" or foreign:
            missing(
                f"Docker is in Swarm mode already (node address {addr}, services {foreign}), "
                "not by this tier: it will not leave a swarm it did not make"
            )
    leave_and_clean()


@pytest.fixture(scope="session")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    """The stack deployed on a fresh single-node swarm, every service converged."""
    try:
        docker("info", timeout=60)
        docker("stack", "--help")
    except (ComposeError, OSError) as exc:
        missing(f"no Docker engine with Swarm support: {exc}")
    claim_engine()
    secrets = tmp_path_factory.mktemp("swarm-secrets")
    subprocess.run(["bash", "scripts/prod-secrets.sh", str(secrets)], cwd=ROOT, check=True)
    s = Swarm(secrets=secrets)
    s.env["SECRETS_DIR"] = str(secrets)
    base = s.env.get("PYTHON_IMAGE", "python:3.11-slim-bookworm")
    s.docker("build", "-q", "-t", IMAGE, "--build-arg", f"PYTHON_IMAGE={base}", ".", timeout=900)
    stack_file = s.render(secrets.parent / "stack.json")
    try:
        init = docker("swarm", "init", "--advertise-addr", "127.0.0.1", check=False)
        if "Swarm initialized" not in init:
            missing(f"docker swarm init failed: {init}")
        (node,) = docker("node", "ls", "-q").split()
        docker("node", "update", *(f"--label-add={label}" for label in NODE_LABELS), node)
        started = time.monotonic()
        docker("stack", "deploy", "--resolve-image", "never", "-c", str(stack_file), STACK)
        s.wait_converged()
        s.startup_seconds = time.monotonic() - started
        yield s
    finally:
        leave_and_clean()
        assert swarm_state()[0] == "inactive", "the engine is still in Swarm mode"
