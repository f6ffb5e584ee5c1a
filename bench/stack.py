"""The benchmark's compose project: bring-up, scaling, workers, Redis probes.

The stack is ``docker-compose.yml`` plus ``docker/bench/compose.bench.yml`` (the
baseline worker, profile ``bench``) as project ``celeryref-bench``, every host port
offset by :data:`PORT_OFFSET` so it never collides with another stack on the host.
This process reaches Redis through the loopback port, as a client would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from devtools.harness import ComposeProject

logger = logging.getLogger(__name__)

PROJECT = "celeryref-bench"
#: Added to every default host port (6379 -> 36379, ...).
PORT_OFFSET = 30_000
OVERRIDE = Path("docker/bench/compose.bench.yml")
#: Worker-name prefix (``-n prefix@%h``) of each worker service the benchmark drives.
WORKER_PREFIX = {
    "worker": "default@",
    "worker-cpu": "cpu_intensive@",
    "worker-priority": "priority@",
    "worker-baseline": "baseline@",
    "worker-baseline-guarded": "guarded@",
    "worker-tuned": "tuned@",
}


def stack_env(base: Mapping[str, str], dotenv: Mapping[str, str]) -> dict[str, str]:
    """The environment for ``docker compose`` and for this process's settings."""
    env = {**dotenv, **base}
    ports = {"REDIS": 6379, "POSTGRES": 5432, "APP": 8000, "FLOWER": 5555, "MAILSINK": 8025}
    env.update({f"{name}_HOST_PORT": str(port + PORT_OFFSET) for name, port in ports.items()})
    env.setdefault("APP_IMAGE", "celeryref/app:bench")
    # The shipped healthcheck interval (30 s): the checks' CPU is part of what the
    # deployment costs; a shorter one only here would charge the benchmark more.
    env.update(
        # The benchmark tasks live outside the product; only this stack registers them.
        EXTRA_TASK_PACKAGES="bench.tasks",
        APP_ENV="development",
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=env["REDIS_HOST_PORT"],
        POSTGRES_HOST="127.0.0.1",
        POSTGRES_PORT=env["POSTGRES_HOST_PORT"],
    )
    return env


class BenchStack(ComposeProject):
    """``docker compose -p celeryref-bench -f docker-compose.yml -f OVERRIDE``, in the
    environment of this process (:func:`stack_env` already applied)."""

    def __init__(self, control: Any, baseline_control: Any) -> None:
        super().__init__(PROJECT, files=("docker-compose.yml", str(OVERRIDE)))
        #: Celery apps for remote control (ping, add/cancel consumer) of the
        #: deployment's workers and of the baseline's (another Redis database).
        self.control, self.baseline_control = control, baseline_control

    def _app(self, service_or_workers: str | Iterable[str]) -> Any:
        names = [service_or_workers] if isinstance(service_or_workers, str) else service_or_workers
        baseline = any(n.startswith(("worker-baseline", "baseline@", "guarded@")) for n in names)
        return self.baseline_control if baseline else self.control

    def up(
        self,
        *args: str,
        profiles: Sequence[str] = ("bench",),
        timeout: float | None = 1800,
        build: bool = True,
    ) -> None:
        """Bring up the deployment and the baseline worker (profile ``bench``), healthy;
        the image built first unless not ``build``."""
        super().up(*args, *(["--build"] if build else []), profiles=profiles, timeout=timeout)

    def down(self, profiles: Sequence[str] = ("bench", "bench-tuned"), check: bool = True) -> None:
        """Remove the stack, the tuned worker (profile ``bench-tuned``) included."""
        super().down(profiles, check)

    def scale_service(self, service: str, count: int) -> list[str]:
        """Run ``count`` containers of ``service``; the names of its answering workers."""
        self.scale(service, count)
        return self.wait_workers(service, count)

    def restart_with(self, service: str, env: Mapping[str, str], profile: str = "bench") -> str:
        """Recreate ``service`` with ``env`` added; the name of its worker."""
        self.compose("--profile", profile, "up", "-d", "--no-deps", "--force-recreate",
                     service, env=env)  # fmt: skip
        return self.wait_workers(service, 1)[0]

    def stop(self, service: str) -> None:
        self.compose("--profile", "bench-tuned", "rm", "-sf", service)

    def wait_workers(self, service: str, count: int, timeout: float = 180) -> list[str]:
        """Wait until exactly ``count`` workers of ``service`` answer a ping."""
        prefix, names = WORKER_PREFIX[service], []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = self._app(service).control.ping(timeout=1.0) or []
            names = sorted(n for reply in replies for n in reply if n.startswith(prefix))
            if len(names) == count:
                return names
            time.sleep(1)
        raise RuntimeError(f"{len(names)} of {count} {service} workers answered: {names}")

    def pause(self, queue: str, workers: Iterable[str]) -> None:
        """Stop ``workers`` consuming ``queue`` (messages pile up in Redis)."""
        names = list(workers)
        self._app(names).control.cancel_consumer(queue, destination=names, reply=True)

    def resume(self, queue: str, workers: Iterable[str]) -> None:
        names = list(workers)
        self._app(names).control.add_consumer(queue, destination=names, reply=True)

    def concurrency(self, workers: Iterable[str]) -> int:
        """Sum of the largest pool sizes of ``workers`` (an autoscaler's maximum)."""
        names = list(workers)
        stats = self._app(names).control.inspect(destination=names, timeout=5).stats() or {}
        return sum(
            int(
                (s.get("autoscaler") or {}).get("max")
                or s.get("pool", {}).get("max-concurrency", 0)
            )
            for s in stats.values()
        )
