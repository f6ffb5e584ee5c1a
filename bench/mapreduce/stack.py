"""What the map-reduce benchmark needs from the running Compose stack: scaling, fresh
``worker-cpu`` processes, and the memory the workers used.

Memory is read by :mod:`devtools.harness` (cgroup peak of each container, ``VmHWM`` of
its largest pool process). Both are peaks since the container (or process) started,
so the benchmark restarts the worker containers before each measured run; the process
peaks are also sampled every 2 s during the run (:class:`devtools.harness.PeakSampler`),
because a pool process that exceeded ``worker_max_memory_per_child`` is replaced after
its task and its peak leaves with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from devtools.harness import ComposeProject, ContainerMemory, read_env_file

logger = logging.getLogger(__name__)

SERVICE = "worker-cpu"


class Stack(ComposeProject):
    """The compose project ``project`` (the developer's ``make up``), ``worker-cpu`` in it."""

    def worker_containers(self) -> list[str]:
        return self.container_ids(SERVICE)

    def fresh_workers(self, count: int, timeout: float = 180) -> int:
        """Scale ``worker-cpu`` to ``count`` containers, restart them (resets the memory
        peaks) and wait until ``count`` workers answer; return their pool processes."""
        self.scale(SERVICE, count)
        self.compose("restart", SERVICE)
        from celeryref.celery_app import app

        deadline = time.monotonic() + timeout
        while True:
            stats = app.control.inspect(timeout=2).stats() or {}
            pools = [
                int(s.get("pool", {}).get("max-concurrency", 0))
                for name, s in stats.items()
                if name.startswith("cpu_intensive@")
            ]
            if len(pools) == count:
                return sum(pools)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pools)} of {count} cpu_intensive workers answered")
            time.sleep(1)

    def worker_memory(self) -> list[ContainerMemory]:
        return self.memory(SERVICE)

    def process_peak_mib(self) -> float:
        """The largest pool-process peak of the ``worker-cpu`` containers (sample it
        during a run with :class:`devtools.harness.PeakSampler`)."""
        return max((r.process_peak_mib for r in self.worker_memory()), default=0.0)

    def exec_app(self, args: Sequence[str], timeout: float = 1800) -> str:
        """Run a command in the ``app`` container; its stdout."""
        return self.exec("app", *args, timeout=timeout)


def summarize_memory(readings: Sequence[ContainerMemory]) -> dict[str, Any]:
    """Largest container peak and largest process peak over the worker containers."""
    peaks = [r.container_peak_mib for r in readings if r.container_peak_mib is not None]
    return {
        "worker_container_peak_mib": round(max(peaks), 1) if peaks else None,
        "process_peak_mib": round(max((r.process_peak_mib for r in readings), default=0.0), 1),
        "workers": [r.__dict__ for r in readings],
    }


def point_at_stack(env: MutableMapping[str, str], dotenv: Path) -> None:
    """Make this process's settings talk to the stack's loopback ports (before import)."""
    values = read_env_file(dotenv)
    for key in ("REDIS_PASSWORD", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        if key not in env and key in values:
            env[key] = values[key]
    env.update(
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=env.get("REDIS_HOST_PORT", "6379"),
        POSTGRES_HOST="127.0.0.1",
        POSTGRES_PORT=env.get("POSTGRES_HOST_PORT", "5432"),
    )


def result_backend_bytes(before: set[bytes]) -> tuple[int, set[bytes]]:
    """Bytes of task results stored since ``before`` (a snapshot of result keys)."""
    import redis

    from celeryref.settings import settings

    client = redis.Redis.from_url(settings.result_backend_url)
    keys = set(client.scan_iter("celery-task-meta-*", count=1000))
    return sum(int(client.strlen(k)) for k in keys - before), keys
