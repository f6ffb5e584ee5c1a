"""Stack tier: the real ``docker-compose.yml`` in a real Docker engine.

The stack runs as compose project ``celeryref-stack`` on its own host ports, so it
never collides with a developer's ``make up`` or with the integration tier. It is
brought up from nothing (``down -v`` first) once per session and removed after,
unless ``KEEP_STACK=1``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from celery import Celery

from devtools.harness import ComposeError, ComposeProject
from tests.conftest import DOTENV, ROOT, docker_compose_available, missing, wait_for
from tests.support.compose import PYTHON_LONG_RUNNING

#: Compose project of the stack under test (override to run two suites at once).
__all__ = ["PYTHON_LONG_RUNNING", "STACK_ENV", "Stack", "holds_beat_lock", "wait_for"]

PROJECT = os.environ.get("STACK_PROJECT", "celeryref-stack")
#: Added to every default host port (6379 -> 26379, ...).
PORT_OFFSET = int(os.environ.get("STACK_PORT_OFFSET", "20000"))


#: Variables the compose file interpolates, set for the stack under test.
STACK_ENV = {
    "REDIS_HOST_PORT": str(6379 + PORT_OFFSET),
    "POSTGRES_HOST_PORT": str(5432 + PORT_OFFSET),
    "FLOWER_HOST_PORT": str(5555 + PORT_OFFSET),
    "APP_HOST_PORT": str(8000 + PORT_OFFSET),
    "MAILSINK_HOST_PORT": str(8025 + PORT_OFFSET),
    # Short intervals so beat and healthchecks are observable within a test.
    "BEAT_HEARTBEAT_SECONDS": "2",
    "HEALTHCHECK_INTERVAL": "5s",
    # As the development .env: the demo and the fetch tests read the API's /healthz.
    # (tests/conftest.py allowlists 127.0.0.1 for the integration tier's fake servers;
    # that value must not reach the stack's containers.)
    "EGRESS_ALLOWED_HOSTS": "app:8000",
}


def holds_beat_lock(project: ComposeProject, container: str) -> bool:
    """Whether the beat that last started in ``container`` holds the single-beat lock: its
    log has redbeat's "Acquired lock" after Celery's last "beat: Starting..."."""
    logs = project.run(["docker", "logs", container]).stderr
    return logs.rfind("beat: Acquired lock") > logs.rfind("beat: Starting...")


@dataclass
class Stack(ComposeProject):
    """Handle on the running compose project."""

    project: str = PROJECT
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, **STACK_ENV})
    timeout: float = 900
    startup_seconds: float = 0.0

    def service_of_host(self, hostname: str) -> str | None:
        """The compose service whose container has ``hostname`` (a short container id)."""
        for row in self.containers():
            if row["ID"].startswith(hostname) or hostname.startswith(row["ID"]):
                return str(row["Service"])
        return None

    def settings_env(self) -> dict[str, str]:
        return {
            "APP_ENV": "test",
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": self.env["REDIS_HOST_PORT"],
            "REDIS_PASSWORD": DOTENV["REDIS_PASSWORD"],
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": self.env["POSTGRES_HOST_PORT"],
            "POSTGRES_USER": DOTENV["POSTGRES_USER"],
            "POSTGRES_PASSWORD": DOTENV["POSTGRES_PASSWORD"],
            "POSTGRES_DB": DOTENV["POSTGRES_DB"],
        }

    def celery(self) -> Celery:
        """A client app talking to the stack's Redis through its loopback port."""
        from celeryref.celery_app import create_app
        from celeryref.settings import load_settings

        return create_app(load_settings(self.settings_env()))

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.env['FLOWER_HOST_PORT']}"

    @property
    def flower_auth(self) -> tuple[str, str]:
        return (DOTENV["FLOWER_USER"], DOTENV["FLOWER_PASSWORD"])


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The whole deployment, built and brought up healthy from nothing."""
    if not docker_compose_available():
        missing(
            "no Docker engine with the compose plugin; run `make test` (installs nothing) "
            "after scripts/ensure-docker.sh"
        )
    s = Stack()
    s.down()
    s.compose("build")
    started = time.monotonic()
    try:
        s.up()
    except ComposeError:
        print(s.compose("logs", "--no-color", "--tail", "80", check=False))  # noqa: T201
        raise
    s.startup_seconds = time.monotonic() - started
    # Measured, not asserted: performance lives in benchmarks. Kept for the notes.
    out = ROOT / "build" / "stack-startup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seconds_to_healthy_after_up": round(s.startup_seconds, 1)}))
    yield s
    if not os.environ.get("KEEP_STACK"):
        s.down(check=False)
