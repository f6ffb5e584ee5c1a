"""6b. CPU tasks against their physical limit, with plain Celery beside the deployment.

The limit is one plain process per core running :func:`bench.work.burn_cpu` back to
back inside the idle ``worker-cpu`` container (:mod:`bench.single`: same interpreter,
libraries, machine and background). Each worker then drains the same tasks, sent from
this process with results collected, the deployment's ``worker-cpu`` and plain
Celery's defaults taking turns for ``cpu_rounds`` rounds, at two task lengths: every
task pays a fixed cost on the same cores (the client publishing and collecting, Redis,
the consumer, the result writes), so the ratio to the limit depends on how long a task
computes, for plain Celery as much as for the deployment.

A side's rate is its tasks over the summed time of its rounds, from the first send
to the last task's end (the end stamp the task takes itself). Two columns say where
the rest goes: a task's wall time beyond its CPU time (the process waited for a core
that something else used) and the median gap between two tasks of one process (the
core idle, or lent to the rest, while the worker finished one task and started the
next).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench import sides
from bench.sides import Side

if TYPE_CHECKING:
    from bench.workloads import Bench

Row = dict[str, Any]


def single_processes(b: Bench, processes: int, tasks: int, milliseconds: float) -> float:
    """Tasks/s of ``processes`` plain processes running ``burn_cpu`` back to back, inside
    the idle ``worker-cpu`` container (:mod:`bench.single`): the physical limit."""
    argv = ["python", "-m", "bench.single", str(tasks), str(milliseconds), str(processes)]
    out = b.stack.exec("worker-cpu", *argv, timeout=600)
    return float(json.loads(out.strip().splitlines()[-1])["per_s"])


def drain(side: Side, tasks: int, milliseconds: float) -> tuple[float, list[float], list[float]]:
    """Send ``tasks`` CPU tasks to ``side``'s CPU queue. Seconds from the first send to the
    last task's end; each task's wall time; each gap between two tasks of one process
    (the end of one to the start of the next: the result write, the acknowledgement, the
    next message's fetch and its STARTED write, wherever the worker makes them)."""
    sent = time.time()
    results = [
        side.app.send_task(sides.BURN, args=[milliseconds], queue=side.queue("cpu"))
        for _ in range(tasks)
    ]
    spans = [r.get(timeout=3600) for r in results]
    by_process: dict[float, list[list[float]]] = {}
    for span in spans:
        by_process.setdefault(span[2], []).append(span)
    gaps = []
    for own in by_process.values():
        own.sort()
        gaps += [after[0] - before[1] for before, after in itertools.pairwise(own)]
    return max(s[1] for s in spans) - sent, [s[1] - s[0] for s in spans], gaps


def cpu_limit(b: Bench) -> list[Row]:
    """Per task length and side: tasks/s over ``cpu_rounds`` alternating rounds, the
    limit measured in the same run, and the ratio to it."""
    z, rows = b.sizes, []
    cores = os.cpu_count() or 1
    for milliseconds, tasks in ((z.cpu_ms, z.scale_cpu_tasks), (z.cpu_ms_long, z.cpu_long_tasks)):
        limit = single_processes(b, cores, tasks, milliseconds)
        seconds: dict[str, list[float]] = {side.label: [] for side in b.sides}
        walls: dict[str, list[float]] = {side.label: [] for side in b.sides}
        gaps: dict[str, list[float]] = {side.label: [] for side in b.sides}
        for side in sides.turns(b.sides, z.cpu_rounds):
            elapsed, wall, gap = drain(side, tasks, milliseconds)
            seconds[side.label].append(elapsed)
            walls[side.label] += wall
            gaps[side.label] += gap
        for side in b.sides:
            spent = seconds[side.label]
            rate = len(spent) * tasks / sum(spent)
            rows.append(
                {
                    "cpu_ms": milliseconds,
                    "side": side.label,
                    "tasks": tasks * len(spent),
                    "tasks_per_s": round(rate, 1),
                    "rounds_per_s": "-".join(f"{tasks / s:.1f}" for s in spent),
                    "single_processes_per_s": limit,
                    "vs_single_processes": round(rate / limit, 2),
                    "wall_ms_per_task": round(statistics.fmean(walls[side.label]) * 1000, 1),
                    "gap_ms_p50": round(statistics.median(gaps[side.label] or [0]) * 1000, 1),
                }
            )
    return rows
