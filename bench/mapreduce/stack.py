"""What the benchmark needs from the running Compose stack: scaling, fresh worker
processes, and the memory the workers used.

Memory is read inside each ``worker-cpu`` container after a run, from two sources:

* the container's cgroup peak (``memory.peak`` on cgroup v2,
  ``memory.max_usage_in_bytes`` on v1): everything the container used at its
  worst moment, including pool processes that were recycled meanwhile
  (``worker_max_memory_per_child``);
* ``VmHWM`` (peak resident set) of each pool process (the processes that run
  tasks; the main process only consumes messages): the largest one.

Both are peaks since the container (or process) started, so the benchmark
restarts the worker containers before each measured run; the process peaks are
also sampled every 2 s during the run (:class:`PeakSampler`), because a pool
process that exceeded ``worker_max_memory_per_child`` is replaced after its task
and its peak leaves with it. ``docker stats`` would show only the moment's usage.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SERVICE = "worker-cpu"

#: Runs inside a worker container; prints the cgroup peak and the VmHWM of each pool
#: process: the Celery processes without Celery children (not init, not the main process).
_MEMORY_PROBE = r"""
import json, os
peak = None
for path in ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"):
    try:
        peak = int(open(path).read())
        break
    except (OSError, ValueError):
        pass
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if b"celery" not in open(f"/proc/{pid}/cmdline", "rb").read():
            continue
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
        procs[pid] = (status["PPid"].strip(), int(status["VmHWM"].split()[0]))
    except (OSError, KeyError, ValueError):
        pass
parents = {ppid for ppid, _ in procs.values()}
pool = [hwm for pid, (_, hwm) in procs.items() if pid not in parents]  # leaves: pool processes
print(json.dumps({"cgroup_peak_bytes": peak, "pool_hwm_kib": pool}))
"""


@dataclass(frozen=True)
class WorkerMemory:
    """Peaks of one worker container and of its largest pool process, MiB."""

    container: str
    container_peak_mib: float | None
    process_peak_mib: float


class Stack:
    """``docker compose -p PROJECT [-f FILE ...]`` in the current directory."""

    def __init__(self, project: str, files: Sequence[str] = ()) -> None:
        self.project = project
        #: Compose files (``-f``); none = compose's default lookup.
        self.files = tuple(files)

    def compose(self, *args: str, timeout: float = 600) -> str:
        files = [arg for f in self.files for arg in ("-f", f)]
        run = subprocess.run(  # noqa: S603 - fixed program, arguments from this module
            ["docker", "compose", "-p", self.project, *files, *args],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ.copy(),
            check=False,
        )
        if run.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)}: {run.stderr[-2000:]}")
        return run.stdout

    def worker_containers(self) -> list[str]:
        return self.compose("ps", "-q", SERVICE).split()

    def scale(self, count: int) -> None:
        self.compose("up", "-d", "--no-deps", "--scale", f"{SERVICE}={count}", SERVICE)

    def fresh_workers(self, count: int, timeout: float = 180) -> int:
        """Scale ``worker-cpu`` to ``count`` containers, restart them (resets the memory
        peaks) and wait until ``count`` workers answer; return their pool processes."""
        self.scale(count)
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

    def worker_memory(self) -> list[WorkerMemory]:
        readings = []
        for container in self.worker_containers():
            run = subprocess.run(  # noqa: S603 - container ids from docker compose ps
                ["docker", "exec", container, "python", "-c", _MEMORY_PROBE],  # noqa: S607
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            data = json.loads(run.stdout)
            peak = data["cgroup_peak_bytes"]
            readings.append(
                WorkerMemory(
                    container[:12],
                    None if peak is None else peak / 2**20,
                    max(data["pool_hwm_kib"], default=0) / 1024,
                )
            )
        return readings

    def exec_app(self, args: Sequence[str], timeout: float = 1800) -> str:
        """Run a command in the ``app`` container; its stdout."""
        return self.compose("exec", "-T", "app", *args, timeout=timeout)


class PeakSampler:
    """Reads :meth:`Stack.worker_memory` every ``every`` seconds while a run lasts and
    keeps the largest pool-process peak seen: a pool process recycled after its
    task (``worker_max_memory_per_child``) takes its ``VmHWM`` with it."""

    def __init__(self, stack: Stack, every: float = 2.0) -> None:
        self.stack, self.every = stack, every
        self.process_peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                readings = self.stack.worker_memory()
            except (subprocess.SubprocessError, ValueError, OSError):
                continue  # a container restarting; the next sample will do
            peaks = [r.process_peak_mib for r in readings]
            self.process_peak_mib = max([self.process_peak_mib, *peaks])

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def summarize_memory(readings: Sequence[WorkerMemory]) -> dict[str, Any]:
    """Largest container peak and largest process peak over the worker containers."""
    peaks = [r.container_peak_mib for r in readings if r.container_peak_mib is not None]
    return {
        "worker_container_peak_mib": round(max(peaks), 1) if peaks else None,
        "process_peak_mib": round(max((r.process_peak_mib for r in readings), default=0.0), 1),
        "workers": [r.__dict__ for r in readings],
    }


def point_at_stack(env: MutableMapping[str, str], dotenv: Path) -> None:
    """Make this process's settings talk to the stack's loopback ports (before import)."""
    values: dict[str, str] = {}
    if dotenv.is_file():
        for line in dotenv.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
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
