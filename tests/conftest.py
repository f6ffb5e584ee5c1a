"""Shared test set-up: the environment every tier's host process runs with.

Tiers (see README "Tests"):

* ``tests/unit``: nothing running.
* ``tests/integration``: real Redis and Postgres (started with the compose file's
  own ``redis``/``postgres`` services when not already reachable) and an
  in-process worker.
* ``tests/stack``: the whole ``docker-compose.yml`` in Docker.

A tier whose services are missing is skipped locally and FAILS when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from devtools.harness import ROOT, read_env_file

#: The secrets the compose file gets from ``.env``; the tests use the same ones.
DOTENV = read_env_file(ROOT / ".env")

#: Host ports of the integration tier's Redis and Postgres.
IT_REDIS_PORT = os.environ.get("IT_REDIS_PORT", "16379")
IT_POSTGRES_PORT = os.environ.get("IT_POSTGRES_PORT", "16432")

# The package reads its settings once at import: point it at the integration
# services before any test module imports it.
for _key, _value in {
    "APP_ENV": "test",
    "REDIS_HOST": "127.0.0.1",
    "REDIS_PORT": IT_REDIS_PORT,
    "REDIS_PASSWORD": DOTENV["REDIS_PASSWORD"],
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": IT_POSTGRES_PORT,
    "POSTGRES_USER": DOTENV["POSTGRES_USER"],
    "POSTGRES_PASSWORD": DOTENV["POSTGRES_PASSWORD"],
    "POSTGRES_DB": DOTENV["POSTGRES_DB"],
    "REPORT_DIR": str(ROOT / "build" / "reports"),
    "IMAGE_DIR": str(ROOT / "build" / "images"),
    # The tests' fake HTTP upstreams listen on 127.0.0.1: allowlisted by that name
    # only (celeryref.adapters.egress); "localhost" and the rest stay refused.
    "EGRESS_ALLOWED_HOSTS": "127.0.0.1",
}.items():
    os.environ.setdefault(_key, _value)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(reason: str) -> None:
    """Skip locally, fail in CI: a tier must never pass by not running."""
    if in_ci():
        pytest.fail(f"CI requires it: {reason}", pytrace=False)
    pytest.skip(reason)


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    ok = subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0
    return ok and (
        subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    )


T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``.

    The one way tests wait: for a condition, with a deadline (never a bare sleep).
    """
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)
    return value
