"""What the compose-file tests share: the files as Compose resolves them."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from tests.conftest import ROOT, missing

#: The worker services, one per queue, as docker-compose.yml names them.
WORKERS = ("worker", "worker-cpu", "worker-io", "worker-priority", "worker-scheduled")
#: The long-running services built from the app image (with redis and postgres: every
#: long-running service of the production profile).
PYTHON_LONG_RUNNING = ("app", *WORKERS, "beat", "flower")


def compose_config(
    *files: str, env: Mapping[str, str] | None = None, project: str | None = None
) -> dict[str, Any]:
    """``docker compose [-p project] -f ... config --format json`` in the repository, with
    ``env`` as the whole environment (``None``: this process's); ``missing()`` when the
    docker CLI is absent or Compose refuses the files."""
    if shutil.which("docker") is None:
        missing("docker CLI not installed")
    argv = ["docker", "compose", *(["-p", project] if project else [])]
    argv += [arg for f in files for arg in ("-f", f)]
    run = subprocess.run(
        [*argv, "config", "--format", "json"],
        cwd=ROOT,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode != 0:
        missing(f"docker compose config failed: {run.stderr[-500:]}")
    model: dict[str, Any] = json.loads(run.stdout)
    return model
