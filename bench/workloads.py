"""The workloads of issues 8 and 15. Each returns a list of rows (dicts) for the report.

Times: ``time.perf_counter()`` for intervals measured by this process; task
timestamps are ``time.time()`` seconds taken inside the task (one host clock), so
a wait is ``task start - sent``. Rates are tasks per second.

Longer than 250 lines: nine workloads of 20-60 lines each (a tenth, section 6b, is
:mod:`bench.cpu_tasks`), run by one loop in :mod:`bench.__main__`; one file per
workload would only add imports.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery import chord, group
from celery.canvas import chunks

from bench import costs, cpu_tasks, sides, stats
from bench.sides import Side
from bench.stack import BenchStack
from devtools.harness import PeakSampler

logger = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does (``--quick`` shrinks every number)."""

    noop_tasks: int = 50_000
    serial_calls: int = 1_000
    capacity_tasks: int = 2_000
    #: Seconds of fixed-rate arrivals per load level.
    open_loop_seconds: float = 20.0
    cpu_backlog: int = 2_000
    cpu_ms: float = 50.0
    pings: int = 50
    hol_long: int = 200
    hol_short: int = 200
    #: Factor on the issue's 10/5/3/1 s long tasks.
    hol_scale: float = 0.1
    hol_short_seconds: float = 0.01
    chord_sizes: tuple[int, ...] = (1_000, 10_000)
    chunk_size: int = 100
    #: The chord-limit search: headers of the first chord (doubled until one takes
    #: longer than :attr:`chord_limit_seconds` to its body, or reaches the cap).
    chord_limit_start: int = 2_500
    chord_limit_seconds: float = 60.0
    chord_limit_cap: int = 80_000
    scale_counts: tuple[int, ...] = (1, 2, 3)
    scale_noop_tasks: int = 20_000
    scale_cpu_tasks: int = 400
    #: Section 6b (:mod:`bench.cpu_tasks`): a longer CPU task (``cpu_ms`` tasks are
    #: ``scale_cpu_tasks``), how many of them, rounds per side and length.
    cpu_ms_long: float = 200.0
    cpu_long_tasks: int = 100
    cpu_rounds: int = 2
    #: Short tasks with results per side in the cost breakdown.
    cost_tasks: int = 5_000
    #: Rounds the cost breakdown splits them into, the sides taking turns in each
    #: round: the machine's load drifts within minutes, and both sides see the drift.
    cost_rounds: int = 4


QUICK = Sizes(
    noop_tasks=1_000, serial_calls=100, capacity_tasks=200, open_loop_seconds=5.0,
    cpu_backlog=200, pings=20, hol_long=40, hol_short=40, hol_scale=0.05,
    chord_sizes=(100, 500), scale_noop_tasks=300, scale_cpu_tasks=40, cost_tasks=500,
    cost_rounds=2, cpu_long_tasks=10, chord_limit_start=250, chord_limit_seconds=5.0,
)  # fmt: skip

#: A run that fits about 20 minutes on 2 cores: the issue's CPU backlog (2,000 x 50 ms)
#: and a chord of 1,000, a tenth of the issue's other sizes (no chord of 10,000).
MEDIUM = Sizes(
    noop_tasks=5_000, serial_calls=300, capacity_tasks=1_000, open_loop_seconds=10.0,
    cpu_backlog=2_000, pings=30, hol_long=100, hol_short=100, hol_scale=0.1,
    chord_sizes=(1_000,), scale_noop_tasks=2_000, scale_cpu_tasks=200, cost_tasks=2_000,
    cpu_long_tasks=60,
)  # fmt: skip


@dataclass
class Bench:
    """What every workload needs: the stack, both sides, a Redis client, the sizes."""

    stack: BenchStack
    deployment: Side
    baseline: Side
    sizes: Sizes
    #: Postgres DSN of the deployment (its transactions per task); ``None`` skips them.
    pg_dsn: str | None = None
    #: Plain Celery with the spec's guarantees (section 7 only); ``None`` leaves it out.
    guarded: Side | None = None

    @property
    def sides(self) -> tuple[Side, Side]:
        return (self.deployment, self.baseline)


def _send_many(app: Any, name: str, count: int, **options: Any) -> float:
    """Publish ``count`` tasks ``name`` on one connection; the seconds it took."""
    args = options.pop("args", None)
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task(name, args=args, producer=producer, **options)
    return time.perf_counter() - started


def _drain(b: Bench, side: Side, queue: str, workers: list[str], count: int) -> Row:
    """Pause ``workers``, pre-load ``count`` no-ops on ``queue``, resume, time the drain."""
    b.stack.pause(queue, workers)
    sides.wait_drained(side.redis, [queue], timeout=600)
    enqueue_s = _send_many(side.app, sides.NOOP, count)
    resumed = time.perf_counter()
    b.stack.resume(queue, workers)
    done = sides.wait_drained(side.redis, [queue], timeout=3600)
    return {
        "tasks": count,
        "enqueue_per_s": round(count / enqueue_s),
        "drain_per_s": round(count / (done - resumed)),
    }


@contextmanager
def _tuned_worker(b: Bench) -> Iterator[tuple[str, Callable[[dict[str, str]], str]]]:
    """The deployment's ``worker`` paused on ``default`` while worker-tuned serves it.

    Yields the queue and ``start(env)``, which (re)creates worker-tuned with ``env``
    (its pool, concurrency, prefetch) and returns its worker name; afterwards
    worker-tuned is removed and ``worker`` consumes again.
    """
    service, queue = b.deployment.roles["default"]
    deployed = b.stack.wait_workers(service, 1)
    b.stack.pause(queue, deployed)
    try:
        yield queue, lambda env: b.stack.restart_with("worker-tuned", env, profile="bench-tuned")
    finally:
        b.stack.stop("worker-tuned")
        b.stack.resume(queue, deployed)


def _summed_rate(rounds: list[Row], key: str) -> int:
    """Rate ``key`` over rounds: all their tasks over all their time (not the mean of
    the rates, which would weigh a fast round's few seconds like a slow round's many)."""
    tasks: int = sum(r["tasks"] for r in rounds)
    seconds: float = sum(r["tasks"] / r[key] for r in rounds)
    return round(tasks / seconds)


#: Rounds of the deployment/baseline no-op drain, the sides taking turns.
NOOP_ROUNDS = 3


def noop_drain(b: Bench) -> list[Row]:
    """1. Pre-load no-ops (no result); tasks/s drained and enqueued. The deployment and
    the baseline drain :data:`NOOP_ROUNDS` times in alternating order (rates over the
    summed time); the two variants after them run once."""
    per_round = max(1, b.sizes.noop_tasks // NOOP_ROUNDS)
    runs: dict[str, list[Row]] = {side.label: [] for side in b.sides}
    for side in sides.turns(b.sides, NOOP_ROUNDS):
        service, queue = side.roles["default"]
        workers = b.stack.wait_workers(service, 1)
        runs[side.label].append(_drain(b, side, queue, workers, per_round))
    rows: list[Row] = []
    for label, each in runs.items():
        n = sum(r["tasks"] for r in each)
        rows.append({
            "side": label,
            "tasks": n,
            "enqueue_per_s": _summed_rate(each, "enqueue_per_s"),
            "drain_per_s": _summed_rate(each, "drain_per_s"),
            "drain_rounds": " ".join(str(r["drain_per_s"]) for r in each),
        })  # fmt: skip
    # What acks_late alone costs: the baseline with task_acks_late on.
    service, queue = b.baseline.roles["default"]
    try:
        late = b.stack.restart_with(service, {"BASELINE_ACKS_LATE": "1"})
        row = _drain(b, b.baseline, queue, [late], b.sizes.noop_tasks)
        rows.append({"side": "baseline + acks_late", **row})
    finally:
        b.stack.restart_with(service, {})
    # The deployment's app and tasks on a threads pool with a deeper prefetch.
    with _tuned_worker(b) as (queue, start_tuned):
        row = _drain(b, b.deployment, queue, [start_tuned({})], b.sizes.noop_tasks)
        rows.append({"side": "deployment, tuned worker (threads x8, prefetch 8)", **row})
    base = rows[1]["drain_per_s"]
    for row in rows:
        row["vs_baseline"] = round(row["drain_per_s"] / base, 2)
    return rows


def _stamps(results: list[Any], timeout: float) -> list[Any]:
    return [r.get(timeout=timeout) for r in results]


def round_trip(b: Bench) -> list[Row]:
    """2. Serial ``delay().get()`` latency; then fixed arrival rates of 50% and 80%."""
    rows: list[Row] = []
    # Serial calls alternate between the sides, so both see the same machine load.
    serial: dict[str, list[float]] = {side.label: [] for side in b.sides}
    for i in range(b.sizes.serial_calls):
        for side in b.sides:
            started = time.perf_counter()
            side.app.send_task(sides.STAMP, args=[i]).get(timeout=60)
            serial[side.label].append(time.perf_counter() - started)
    for side in b.sides:
        app = side.app
        rows.append(
            {"side": side.label, "load": "serial", **stats.summarize_ms(serial[side.label])}
        )
        # Capacity: a pre-loaded burst, so the client's send rate does not limit it.
        service, queue = side.roles["default"]
        workers = b.stack.wait_workers(service, 1)
        b.stack.pause(queue, workers)
        burst = [app.send_task(sides.STAMP, args=[i]) for i in range(b.sizes.capacity_tasks)]
        resumed = time.time()
        b.stack.resume(queue, workers)
        capacity = b.sizes.capacity_tasks / (max(_stamps(burst, 600)) - resumed)
        for share in (0.5, 0.8):
            rate = share * capacity
            count = max(10, int(rate * b.sizes.open_loop_seconds))
            sent_at, results, t0 = [], [], time.perf_counter()
            for i in range(count):
                time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                sent_at.append(time.time())
                results.append(app.send_task(sides.STAMP, args=[i]))
            waits = [ran - s for ran, s in zip(_stamps(results, 600), sent_at, strict=True)]
            rows.append(
                {
                    "side": side.label,
                    "load": f"{share:.0%} of {capacity:.0f}/s",
                    "rate_per_s": round(rate),
                    "sent_per_s": round(count / (sent_at[-1] - sent_at[0]), 1),
                    **stats.summarize_ms(waits),
                }
            )
    return rows


def isolation(b: Bench) -> list[Row]:
    """3. Priority-task latency while a backlog of CPU tasks is queued."""
    rows: list[Row] = []
    for side in b.sides:
        app, cpu_queue = side.app, side.queue("cpu")
        processes = b.stack.concurrency(b.stack.wait_workers(side.service("cpu"), 1))
        backlog_s = b.sizes.cpu_backlog * b.sizes.cpu_ms / 1000 / max(1, processes)
        _send_many(app, sides.BURN, b.sizes.cpu_backlog, args=[b.sizes.cpu_ms])
        interval = backlog_s * 0.5 / b.sizes.pings  # all pings within the backlog's first half
        sent_at, results = [], []
        for _ in range(b.sizes.pings):
            time.sleep(interval)
            sent_at.append(time.time())
            results.append(app.send_task(sides.PING, priority=side.ping_priority))
        timeout = backlog_s * 4 + 120
        waits = [ran - s for ran, s in zip(_stamps(results, timeout), sent_at, strict=True)]
        sides.purge(side.redis, cpu_queue)
        sides.wait_drained(side.redis, [cpu_queue], timeout=timeout)
        rows.append(
            {
                "side": side.label,
                "cpu_tasks": b.sizes.cpu_backlog,
                "cpu_ms": b.sizes.cpu_ms,
                **stats.summarize_ms(waits),
            }
        )
    base = rows[1].get("p99_ms")
    for row in rows:
        row["p99_vs_baseline"] = round(base / row["p99_ms"], 1) if base and row["p99_ms"] else None
    return rows


#: Head-of-line variants: (label, worker-baseline environment); ``None`` = the deployment.
HOL_VARIANTS: tuple[tuple[str, dict[str, str] | None], ...] = (
    ("defaults: prefetch 4, acks early", {}),
    ("prefetch 1 + acks_late", {"BASELINE_PREFETCH": "1", "BASELINE_ACKS_LATE": "1"}),
    ("no-prefetch mode + acks_late", {"BASELINE_DISABLE_PREFETCH": "1", "BASELINE_ACKS_LATE": "1"}),
    ("deployment worker (prefetch 1, acks_late, autoscale 4,2)", None),
)


def head_of_line(b: Bench) -> list[Row]:
    """4. Short tasks among long ones: short-task waits and idle workers per prefetch mode."""
    z = b.sizes
    mix = stats.hol_mix(z.hol_long, z.hol_short, z.hol_scale, z.hol_short_seconds)
    rows: list[Row] = []
    try:
        for label, env in HOL_VARIANTS:
            side = b.deployment if env is None else b.baseline
            service, queue = side.roles["default"]
            if env is None:
                workers = b.stack.wait_workers(service, 1)
            else:
                workers = [b.stack.restart_with(service, env)]
            processes = b.stack.concurrency(workers)
            b.stack.pause(queue, workers)
            sides.wait_drained(side.redis, [queue], timeout=600)
            results = [side.app.send_task(sides.SLEEP, args=[d]) for d in mix]
            resumed = time.time()
            b.stack.resume(queue, workers)
            spans = _stamps(results, 3600)
            short_waits = [
                start - resumed
                for (start, _), d in zip(spans, mix, strict=True)
                if d == z.hol_short_seconds
            ]
            summary = stats.summarize_ms(short_waits)
            rows.append(
                {
                    "variant": label,
                    "processes": processes,
                    "short_p50_wait_ms": summary["p50_ms"],
                    "short_p99_wait_ms": summary["p99_ms"],
                    "makespan_s": round(max(end for _, end in spans) - resumed, 2),
                    "idle_fraction": round(
                        stats.idle_fraction([(s, e) for s, e in spans], processes, resumed), 3
                    ),
                }
            )
    finally:
        b.stack.restart_with("worker-baseline", {})
    return rows


def _used_memory(redis: Any) -> int:
    """Redis ``used_memory``, bytes."""
    return int(redis.info("memory")["used_memory"])


def _header(app: Any, kind: str, size: int, chunk_size: int) -> Any:
    """``size`` stamp tasks: one message each (chord) or ``chunk_size`` per message."""
    if kind == "chord":
        return group(app.signature(sides.STAMP, args=(i,), immutable=True) for i in range(size))
    return chunks(app.signature(sides.STAMP), [(i,) for i in range(size)], chunk_size).group()


def _await_body(app: Any, body_id: str) -> Any:
    """The chord body's result, waited for by its id alone. ``chord(...)().get()`` also
    walks the body's parents on every wait interval (Celery 5.7,
    ``AsyncResult._maybe_reraise_parent_error``): one ``GET`` per header result each
    time, 14-21 per header for a chord of 1,000, on the CPU the workers need."""
    return app.AsyncResult(body_id).get(timeout=3600)


#: Rounds of each chord/chunks run per side in :func:`fan_out`.
FAN_OUT_ROUNDS = 3


def _fan_out_once(b: Bench, side: Side, kind: str, size: int) -> tuple[float, float, int]:
    """One chord of ``size`` stamp headers (or their chunks): seconds from send to the
    body's start, the Redis memory it took at its peak (bytes), the results the body saw."""
    app = side.app
    before = _used_memory(side.redis)
    with PeakSampler(partial(_used_memory, side.redis), every=0.05) as memory:
        sent = time.time()
        header = _header(app, kind, size, b.sizes.chunk_size)
        body = chord(header, app=app)(app.signature(sides.FAN_IN))
        body_start, count = _await_body(app, body.id)
    return body_start - sent, max(0, memory.peak - before), int(count)


def fan_out(b: Bench) -> list[Row]:
    """5. Chord of N headers vs the same work in chunks: time to body start, Redis peak.

    :data:`FAN_OUT_ROUNDS` rounds, the sides taking turns (the order alternates); each
    row is the median round, the ratio of chord times is taken per round."""
    rows: list[Row] = []
    for size in b.sizes.chord_sizes:
        runs: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for side in sides.turns(b.sides, FAN_OUT_ROUNDS):
            for kind in ("chord", "chunks"):
                runs.setdefault((side.label, kind), []).append(_fan_out_once(b, side, kind, size))
        chord_ratios = [
            base[0] / ours[0]
            for ours, base in zip(
                runs[("deployment", "chord")], runs[("baseline", "chord")], strict=True
            )
        ]
        for (label, kind), each in runs.items():
            seconds, peak, count = sorted(each)[len(each) // 2]
            rows.append(
                {
                    "headers": size,
                    "side": label,
                    "kind": kind if kind == "chord" else f"chunks of {b.sizes.chunk_size}",
                    "messages": size if kind == "chord" else -(-size // b.sizes.chunk_size),
                    "body_start_s": round(seconds, 2),
                    "per_task_ms": round(seconds / size * 1000, 3),
                    "redis_peak_mib": round(peak / 2**20, 2),
                    "body_saw": count,
                    "rounds_s": " ".join(f"{t:.2f}" for t, _, _ in each),
                    "chord_ratio_rounds": (
                        " ".join(f"{x:.2f}" for x in chord_ratios)
                        if (label, kind) == ("deployment", "chord")
                        else "-"
                    ),
                }
            )
    return rows


def chord_limit(b: Bench) -> list[Row]:
    """5b. The largest chord the deployment takes to its body within
    ``chord_limit_seconds``: double the headers until one takes longer; per size the
    time to the body and the Redis memory it took at its peak."""
    z, side, rows = b.sizes, b.deployment, []
    size = z.chord_limit_start
    while size <= z.chord_limit_cap:
        seconds, peak, count = _fan_out_once(b, side, "chord", size)
        rows.append({"headers": size, "body_start_s": round(seconds, 1),
                     "per_task_ms": round(seconds / size * 1000, 2),
                     "redis_peak_mib": round(peak / 2**20, 1),
                     "within_limit": seconds <= z.chord_limit_seconds,
                     "body_saw": count})  # fmt: skip
        if seconds > z.chord_limit_seconds:
            break
        size *= 2
    return rows


def scaling(b: Bench) -> list[Row]:
    """6. No-op drain and CPU throughput with 1, 2, 3 worker containers (deployment),
    against the same CPU work on one plain process per core, measured in the same run."""
    rows: list[Row] = []
    app, z = b.deployment.app, b.sizes
    cores = os.cpu_count() or 1
    limit = cpu_tasks.single_processes(b, cores, z.scale_cpu_tasks, z.cpu_ms)
    try:
        for count in z.scale_counts:
            workers = b.stack.scale_service("worker", count)
            queue = b.deployment.queue("default")
            noop = _drain(b, b.deployment, queue, workers, z.scale_noop_tasks)
            cpu_workers = b.stack.scale_service("worker-cpu", count)
            sent = time.time()
            results = [app.send_task(sides.BURN, args=[z.cpu_ms]) for _ in range(z.scale_cpu_tasks)]
            last = max(stamp[1] for stamp in _stamps(results, 3600))
            rows.append(
                {
                    "containers": count,
                    "noop_drain_per_s": noop["drain_per_s"],
                    "cpu_processes": b.stack.concurrency(cpu_workers),
                    "cpu_tasks_per_s": round(z.scale_cpu_tasks / (last - sent), 1),
                    # The physical limit: one plain process per core running burn_cpu
                    # back to back, measured (and the arithmetic bound beside it).
                    "cpu_single_processes_per_s": limit,
                    "cpu_physical_limit_per_s": round(cores * 1000 / z.cpu_ms, 1),
                }
            )
    finally:
        b.stack.scale_service("worker", 1)
        b.stack.scale_service("worker-cpu", 1)
    return rows


def _send_and_join(app: Any, name: str, count: int, args: list[Any]) -> None:
    """Send ``count`` tasks ``name`` on one connection and wait for every result."""
    with app.producer_or_acquire() as producer:
        sent = [app.send_task(name, args=args, producer=producer) for _ in range(count)]
    app.ResultSet(sent).join_native(timeout=600, propagate=True)


def _merge(rounds: list[Row]) -> Row:
    """One row from a side's rounds: rates over the summed time, per-task costs
    weighted by tasks, and the spread of the per-round ratios to the baseline."""
    n = sum(r["tasks"] for r in rounds)
    merged = dict(rounds[0])
    for key, value in rounds[0].items():
        if key not in ("tasks", "tasks_per_s", "pool_processes", "vs_baseline") and isinstance(
            value, int | float
        ):
            merged[key] = round(sum(r[key] * r["tasks"] for r in rounds) / n, 2)
    merged["tasks"] = n
    merged["tasks_per_s"] = _summed_rate(rounds, "tasks_per_s")
    if "pool_processes" in merged:
        merged["pool_processes"] = max(r["pool_processes"] for r in rounds)
    ratios = [r["vs_baseline"] for r in rounds]
    merged["vs_baseline_rounds"] = f"{min(ratios)}-{max(ratios)}"
    return merged


def task_costs(b: Bench) -> list[Row]:
    """7. Short tasks with results, end to end: rate and costs per task (issue 15).

    :attr:`Sizes.cost_rounds` rounds; in each, every run takes its turn (the order
    rotates per round), so the ratios compare sides under the same machine load. Plain
    Celery with the spec's guarantees (:attr:`Bench.guarded`) takes its turn too: what
    the guarantees cost without the rest of the deployment."""
    runs = [
        (b.deployment, "default", sides.STAMP, [0]),
        (b.deployment, "priority", sides.PING, []),
        (b.deployment, "cpu", sides.BURN, [0]),
        *([(b.guarded, "default", sides.STAMP, [0])] if b.guarded else []),
        (b.baseline, "default", sides.STAMP, [0]),  # last: the ratios' denominator
    ]
    for side, role, name, args in runs:
        b.stack.wait_workers(side.service(role), 1)
        _send_and_join(side.app, name, 50, args)  # warm: pool processes up, connections open
    per_round = max(1, b.sizes.cost_tasks // b.sizes.cost_rounds)
    rounds: list[list[Row]] = [[] for _ in runs]
    for r in range(b.sizes.cost_rounds):
        measured: dict[int, Row] = {}
        for i in [(r + k) % len(runs) for k in range(len(runs))]:
            side, role, name, args = runs[i]
            service = side.service(role)
            measured[i] = {"side": side.label, "service": service, **costs.measure(
                redis=side.redis,
                container=f"{b.stack.project}-{service}-1",
                run=partial(_send_and_join, side.app, name, args=args),
                tasks=per_round,
                pg_dsn=b.pg_dsn,
            )}  # fmt: skip
        base = measured[len(runs) - 1]["tasks_per_s"]
        for i, row in measured.items():
            row["vs_baseline"] = round(row["tasks_per_s"] / base, 2)
            rounds[i].append(row)
    rows = [_merge(each) for each in rounds]
    base = rows[-1]["tasks_per_s"]
    for row in rows:
        row["vs_baseline"] = round(row["tasks_per_s"] / base, 2)
    return rows


#: Short-task worker profiles tried on ``default`` (service worker-tuned): label -> env.
PROFILES: dict[str, dict[str, str]] = {
    f"{pool} x{n}, prefetch {prefetch}": {
        "TUNED_POOL": "custom" if pool == "threads" else pool,
        "TUNED_CONCURRENCY": str(n),
        "TUNED_PREFETCH": str(prefetch),
    }
    for pool, n, prefetch in (
        ("prefork", 2, 1),
        ("prefork", 2, 8),
        ("prefork", 4, 4),
        ("threads", 8, 4),
        ("threads", 16, 4),
    )
}


def _cpu_now(container: str, redis: Any) -> tuple[float, float, float]:
    """CPU seconds so far of ``container``, of the Redis server, and of this process."""
    return (
        costs.container_cpu_seconds(container),
        costs.redis_cpu_seconds(redis),
        time.process_time(),
    )


def _cpu_bound(cpu_us_per_task: float | None) -> int | None:
    """Tasks/s this machine's cores allow at ``cpu_us_per_task`` of CPU each."""
    if not cpu_us_per_task:
        return None
    return round((os.cpu_count() or 1) * 1e6 / cpu_us_per_task)


def _drain_results(b: Bench, side: Side, service: str, count: int) -> Row:
    """Pause ``service``'s workers, pre-load ``count`` short tasks with results, resume;
    time until the last result is stored, and the CPU each task cost: the worker's
    container, the Redis server, this client collecting results, and the rate 2 cores
    would allow at that total (every other process of the machine idle)."""
    queue = side.queue("default")  # worker-tuned serves the deployment's default queue
    workers = b.stack.wait_workers(service, 1)
    (container,) = b.stack.container_ids(service)
    b.stack.pause(queue, workers)
    sides.wait_drained(side.redis, [queue], timeout=600)
    with side.app.producer_or_acquire() as producer:
        sent = [side.app.send_task(sides.STAMP, args=[0], producer=producer) for _ in range(count)]
    before = _cpu_now(container, side.redis)
    resumed = time.perf_counter()
    b.stack.resume(queue, workers)
    side.app.ResultSet(sent).join_native(timeout=3600, propagate=True)
    seconds = time.perf_counter() - resumed
    worker, redis_, client = (
        (after - start) / count * 1e6
        for start, after in zip(before, _cpu_now(container, side.redis), strict=True)
    )
    total = worker + redis_ + client
    return {
        "tasks": count,
        "tasks_per_s": round(count / seconds),
        "cpu_us_worker": round(worker),
        "cpu_us_redis": round(redis_),
        "cpu_us_client": round(client),
        "cpu_us_total": round(total),
        "cpu_bound_per_s": _cpu_bound(total),
    }


def _merge_drains(drains: list[Row]) -> Row:
    """A profile's (or the baseline's) drains as one row; the rate 2 cores allow is
    recomputed from the merged CPU per task."""
    merged = _merge(drains)
    total = merged.get("cpu_us_total")
    merged["cpu_bound_per_s"] = _cpu_bound(total)
    return merged


def profiles(b: Bench) -> list[Row]:
    """8. Short tasks with results drained from a backlog: worker profiles (issue 15).

    Each profile and the baseline take turns for :attr:`Sizes.cost_rounds` drains of
    ``cost_tasks / cost_rounds`` (the order alternating): one drain per profile read a
    fixed pool of 2 as 1.02x and the shipped worker as 0.78x in one run, and the
    reverse order held in two interleaved runs (docs/PERFORMANCE.md, session 12). Each
    ratio is to the baseline drains between the profile's own; the baseline row
    merges all of them."""
    rounds = max(1, b.sizes.cost_rounds)
    per_drain = max(1, b.sizes.cost_tasks // rounds)
    baselines: list[Row] = []
    rows: list[Row] = []

    def against_baseline(label: str, side: Side, service: str) -> None:
        turns = [(b.baseline, b.baseline.service("default")), (side, service)]
        drained: dict[str, list[Row]] = {b.baseline.label: [], side.label: []}
        for who, where in sides.turns(turns, rounds):
            drained[who.label].append(_drain_results(b, who, where, per_drain))
        mine, theirs = drained[side.label], drained[b.baseline.label]
        for own, base in zip(mine, theirs, strict=True):
            own["vs_baseline"] = round(own["tasks_per_s"] / base["tasks_per_s"], 2)
            base["vs_baseline"] = 1.0
        baselines.extend(theirs)
        row, base_rate = _merge_drains(mine), _merge_drains(theirs)["tasks_per_s"]
        rows.append({"profile": label, **row, "baseline_per_s": base_rate,
                     "vs_baseline": round(row["tasks_per_s"] / base_rate, 2)})  # fmt: skip

    against_baseline(
        "deployment as shipped (worker)", b.deployment, b.deployment.service("default")
    )
    with _tuned_worker(b) as (_, start_tuned):
        for label, env in PROFILES.items():
            start_tuned(env)
            against_baseline(label, b.deployment, "worker-tuned")
    merged = _merge_drains(baselines)
    merged["vs_baseline"] = 1.0
    return [{"profile": "baseline: plain Celery defaults", **merged}, *rows]


#: Workload name -> function, in the order they run.
WORKLOADS: dict[str, Callable[[Bench], list[Row]]] = {
    "noop": noop_drain,
    "roundtrip": round_trip,
    "isolation": isolation,
    "hol": head_of_line,
    "fanout": fan_out,
    "chordmax": chord_limit,
    "scaling": scaling,
    "cpu": cpu_tasks.cpu_limit,
    "costs": task_costs,
    "profiles": profiles,
}
