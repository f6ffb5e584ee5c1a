"""The one harness for the Compose stacks that benchmarks and tests bring up: the
``.env`` file, ``docker compose`` on one project, and the memory its containers used.

Memory is read inside each container (``docker exec``), from two sources:

* the container's cgroup peak (``memory.peak`` on cgroup v2,
  ``memory.max_usage_in_bytes`` on v1): everything the container used at its worst
  moment, including pool processes recycled meanwhile (``worker_max_memory_per_child``);
* ``VmHWM`` (peak resident set) of each pool process (a Celery process without Celery
  children: not the main process, which only consumes messages): the largest.

Both are peaks since the container (or process) started, so nothing between two
samples is missed; ``docker stats`` shows only the moment's usage. :class:`PeakSampler`
still samples while a run lasts, because a recycled pool process takes its ``VmHWM``
with it.

Nothing here imports the product: importing this module never reads the settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

#: The repository root: every command runs here (relative ``-f`` paths, compose's ``.env``).
ROOT = Path(__file__).resolve().parent.parent

#: Runs inside a container; prints the cgroup peak and the VmHWM of each pool process:
#: the Celery processes without Celery children (not init, not the main process).
MEMORY_PROBE = r"""
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


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a compose ``.env`` file, key and value stripped; comments,
    blank lines and lines without ``=`` skipped; an absent file is empty. No quoting or
    ``${}`` expansion (ours uses neither)."""
    values: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


class ComposeError(RuntimeError):
    """A ``docker`` or ``docker compose`` command exited non-zero."""


def _stdout(run: subprocess.CompletedProcess[str], check: bool) -> str:
    if check and run.returncode != 0:
        command = " ".join(run.args)[:300]
        raise ComposeError(
            f"{command} failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        )
    return run.stdout


@dataclass(frozen=True)
class ContainerMemory:
    """Peaks of one container and of its largest pool process, MiB."""

    #: Short container id.
    container: str
    #: ``None`` where the kernel keeps no cgroup peak.
    container_peak_mib: float | None
    process_peak_mib: float

    @classmethod
    def parse(cls, container: str, probe_output: str) -> ContainerMemory:
        """The reading :data:`MEMORY_PROBE` printed in ``container``."""
        data = json.loads(probe_output)
        peak = data["cgroup_peak_bytes"]
        return cls(
            container[:12],
            None if peak is None else peak / 2**20,
            max(data["pool_hwm_kib"], default=0) / 1024,
        )


def _profiles(names: Sequence[str]) -> list[str]:
    return [arg for name in names for arg in ("--profile", name)]


@dataclass
class ComposeProject:
    """``docker compose -p PROJECT [-f FILE ...]``, run in :data:`ROOT` with :attr:`env`."""

    project: str
    #: Compose files (``-f``), relative to :data:`ROOT`; none: compose's own lookup.
    files: tuple[str, ...] = ()
    #: The environment of every command (compose interpolates the files from it).
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    #: Seconds a compose command may take unless told otherwise.
    timeout: float = 600
    #: Seconds ``up --wait`` gives every service to become healthy.
    wait_timeout: int = 600

    def compose_command(self, *args: str) -> list[str]:
        """``docker compose`` argv for this project and its files, then ``args``."""
        files = [arg for name in self.files for arg in ("-f", name)]
        return ["docker", "compose", "-p", self.project, *files, *args]

    def run(
        self,
        argv: Sequence[str],
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in :data:`ROOT` with ``env`` (default :attr:`env`), whatever its
        exit status."""
        return subprocess.run(  # noqa: S603 - docker, arguments from the callers' code
            list(argv),
            cwd=ROOT,
            env=self.env if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=self.timeout if timeout is None else timeout,
            check=False,
        )

    def compose(
        self,
        *args: str,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """``docker compose ... args``; its stdout. :class:`ComposeError` if it fails
        (unless not ``check``). ``env`` is added to :attr:`env` for this command."""
        command = self.compose_command(*args)
        return _stdout(self.run(command, timeout, {**self.env, **(env or {})}), check)

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """``docker args`` (inspect, kill, exec ... a container) in this process's own
        environment, not the project's; its stdout."""
        return _stdout(self.run(["docker", *args], timeout, os.environ), check)

    def up(self, *args: str, profiles: Sequence[str] = (), timeout: float | None = None) -> None:
        """``up -d --wait`` (every service healthy within :attr:`wait_timeout`) ``args``."""
        wait = ("--wait", "--wait-timeout", str(self.wait_timeout))
        self.compose(*_profiles(profiles), "up", "-d", *wait, *args, timeout=timeout)

    def down(self, profiles: Sequence[str] = (), check: bool = True) -> None:
        """Remove the project's containers, networks and volumes."""
        self.compose(*_profiles(profiles), "down", "-v", "--remove-orphans", check=check)

    def scale(self, service: str, count: int) -> None:
        """Run ``count`` containers of ``service`` (its dependencies untouched)."""
        self.compose("up", "-d", "--no-deps", "--scale", f"{service}={count}", service)

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """``ps -a`` rows (Service, ID, State, Health, ExitCode, ...), stopped ones too."""
        out = self.compose("ps", "-a", "--format", "json", *([service] if service else []))
        out = out.strip()
        if out.startswith("["):  # compose before 2.21 prints one JSON array
            rows: list[dict[str, Any]] = json.loads(out)
            return rows
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container_ids(self, service: str) -> list[str]:
        """Ids of the running containers of ``service``."""
        return self.compose("ps", "-q", service).split()

    def exec(self, service: str, *command: str, timeout: float | None = None) -> str:
        """Run ``command`` in ``service``'s container (``exec -T``); its stdout."""
        return self.compose("exec", "-T", service, *command, timeout=timeout)

    def exec_in(
        self, container: str, *command: str, check: bool = True, timeout: float = 120
    ) -> str:
        """Run ``command`` in ``container`` (an id: one of several of a service)."""
        return self.docker("exec", container, *command, check=check, timeout=timeout)

    def memory(self, service: str) -> list[ContainerMemory]:
        """Memory peaks of each running container of ``service`` (module docstring)."""
        return [
            ContainerMemory.parse(c, self.exec_in(c, "python", "-c", MEMORY_PROBE, timeout=60))
            for c in self.container_ids(service)
        ]


class PeakSampler:
    """The largest value ``read()`` returned, called every ``every`` seconds (in a
    thread) while the ``with`` block lasts. A read that fails the way a restarting
    container makes it fail is skipped: the next one will do."""

    def __init__(self, read: Callable[[], float], every: float = 2.0) -> None:
        self.read, self.every = read, every
        self.peak: float = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.peak = max(self.peak, self.read())
            except (ComposeError, subprocess.SubprocessError, OSError, ValueError):
                continue

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
