"""Per-task cost breakdown (issue 15): where each microsecond above plain Celery goes.

For one side (a worker service and the queue it reads) it sends ``N`` short tasks
with results from this process, waits for every result, and reports per task:

* Redis commands by name and in total (``INFO commandstats`` after ``CONFIG
  RESETSTAT``), bytes into Redis (``total_net_input_bytes``): every client of the
  server counts, so an idle interval of the same length measured just before is
  subtracted (heartbeats, beat, Flower);
* Postgres transactions (``xact_commit + xact_rollback`` of the database);
* CPU microseconds of the worker's main process (the consumer) and of its pool
  processes, from ``/proc/<pid>/stat`` of the container's processes (``docker top``
  gives their host PIDs), and of the Redis server (``INFO cpu``, idle subtracted):
  one Redis core divided by it is the ceiling of one Redis (docs/SCALING.md);
* log lines the worker container wrote;
* the end-to-end rate (first send to last result).

Run by :mod:`bench.__main__` as the ``costs`` workload, or alone against a running
bench stack: ``python -m bench --reuse-stack --only costs``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Processes:
    """Host PIDs of a worker container: the consumer and its pool processes."""

    main: int
    pool: tuple[int, ...]


def worker_processes(container: str) -> Processes:
    """The celery processes of ``container``: the main one is the parent of the others."""
    out = subprocess.run(  # noqa: S603 - fixed program
        ["docker", "top", container, "-o", "pid,ppid,args"],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()[1:]
    rows = [line.split(None, 2) for line in out]
    celery = {int(pid): int(ppid) for pid, ppid, args in rows if _is_worker(args)}
    mains = [pid for pid, ppid in celery.items() if ppid not in celery]
    if len(mains) != 1:
        raise RuntimeError(f"{container}: expected one celery main process, got {mains}")
    main = mains[0]
    return Processes(main, tuple(sorted(p for p, pp in celery.items() if pp == main)))


def container_cpu_seconds(container_id: str) -> float:
    """CPU seconds every process of a container used so far (its cgroup: the worker,
    its pool and any healthcheck run), cgroup v1 or v2."""
    v1 = f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage"
    if os.path.exists(v1):
        with open(v1) as f:
            return int(f.read()) / 1e9
    with open(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat") as f:
        usage = dict(line.split() for line in f)
    return int(usage["usage_usec"]) / 1e6


def redis_cpu_seconds(redis: Any) -> float:
    """CPU seconds the Redis server used so far (``INFO cpu``, user + system)."""
    cpu = redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _is_worker(args: str) -> bool:
    """``celery -A ... worker`` (a healthcheck's ``python -m celeryref...`` is not)."""
    words = args.split()
    return "worker" in words and any(w.endswith("celery") for w in words[:2])


def _stat(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return ["0"] * 20


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 once it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def pool_cpu_seconds(procs: Processes) -> float:
    """CPU seconds of the live pool processes plus those the main process has reaped
    (``cutime + cstime``): a child recycled by ``max_tasks_per_child`` keeps counting."""
    main = _stat(procs.main)
    return sum(map(cpu_seconds, procs.pool)) + (int(main[13]) + int(main[14])) / _TICKS


def _redis_counts(redis: Any) -> tuple[dict[str, int], int, float]:
    """Commands by name, bytes in, and the server's CPU seconds (main thread and I/O)."""
    stats = redis.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return calls, int(redis.info("stats")["total_net_input_bytes"]), redis_cpu_seconds(redis)


def _pg_transactions(pg_dsn: str | None) -> int:
    if not pg_dsn:
        return 0
    import psycopg2

    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        row = cur.fetchone()
    conn.close()
    return int(row[0]) if row else 0


def _log_lines(container: str, since: float) -> int:
    out = subprocess.run(  # noqa: S603 - fixed program
        ["docker", "logs", "--since", f"{since:.3f}", container],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    )
    return len((out.stdout + out.stderr).splitlines())


@contextmanager
def _window(redis: Any) -> Iterator[dict[str, Any]]:
    """Redis counters over the body of the ``with``: commands by name, bytes, seconds."""
    redis.config_resetstat()
    cpu_before = _redis_counts(redis)[2]
    started = time.perf_counter()
    seen: dict[str, Any] = {}
    yield seen
    calls, net_in, cpu_after = _redis_counts(redis)
    seen.update(
        calls=calls,
        net_in=net_in,
        seconds=time.perf_counter() - started,
        redis_cpu=cpu_after - cpu_before,
    )


def measure(
    *,
    redis: Any,
    container: str,
    run: Callable[[int], None],
    tasks: int,
    pg_dsn: str | None = None,
    idle_seconds: float = 3.0,
) -> dict[str, Any]:
    """Costs per task of ``run(tasks)`` (which sends ``tasks`` and waits for their results)."""
    with _window(redis) as idle:
        time.sleep(idle_seconds)  # the background this server carries anyway
    procs = worker_processes(container)
    cpu_main, cpu_pool = cpu_seconds(procs.main), pool_cpu_seconds(procs)
    xacts, since = _pg_transactions(pg_dsn), time.time()
    with _window(redis) as busy:
        run(tasks)
    pool_after = pool_cpu_seconds(worker_processes(container))
    scale = busy["seconds"] / idle["seconds"]
    commands = {
        name: round((n - idle["calls"].get(name, 0) * scale) / tasks, 2)
        for name, n in busy["calls"].items()
    }
    commands = {k: v for k, v in sorted(commands.items(), key=lambda kv: -kv[1]) if v >= 0.05}
    return {
        "tasks": tasks,
        "tasks_per_s": round(tasks / busy["seconds"]),
        "redis_commands": round(sum(commands.values()), 1),
        "redis_by_command": ", ".join(f"{k} {v:g}" for k, v in list(commands.items())[:10]),
        "bytes_in_redis": round((busy["net_in"] - idle["net_in"] * scale) / tasks),
        # The server's own CPU per task (one core is its ceiling: docs/SCALING.md).
        "cpu_us_redis": round((busy["redis_cpu"] - idle["redis_cpu"] * scale) / tasks * 1e6),
        "pg_transactions": round((_pg_transactions(pg_dsn) - xacts) / tasks, 2),
        "cpu_us_consumer": round((cpu_seconds(procs.main) - cpu_main) / tasks * 1e6),
        "cpu_us_pool": round((pool_after - cpu_pool) / tasks * 1e6),
        "pool_processes": len(procs.pool),
        "log_lines": round(_log_lines(container, since) / tasks, 2),
    }
