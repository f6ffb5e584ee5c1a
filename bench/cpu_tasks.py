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
to the last task's end (the end stamp the task takes itself).
"""

from __future__ import annotations

import json
import os
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


def drain_seconds(side: Side, tasks: int, milliseconds: float) -> float:
    """Send ``tasks`` CPU tasks to ``side``'s CPU queue; seconds from the first send to
    the last task's end."""
    sent = time.time()
    results = [
        side.app.send_task(sides.BURN, args=[milliseconds], queue=side.queue("cpu"))
        for _ in range(tasks)
    ]
    last = max(stamps[1] for stamps in (r.get(timeout=3600) for r in results))
    return float(last - sent)


def cpu_limit(b: Bench) -> list[Row]:
    """Per task length and side: tasks/s over ``cpu_rounds`` alternating rounds, the
    limit measured in the same run, and the ratio to it."""
    z, rows = b.sizes, []
    cores = os.cpu_count() or 1
    for milliseconds, tasks in ((z.cpu_ms, z.scale_cpu_tasks), (z.cpu_ms_long, z.cpu_long_tasks)):
        limit = single_processes(b, cores, tasks, milliseconds)
        seconds: dict[str, list[float]] = {side.label: [] for side in b.sides}
        for turn in range(z.cpu_rounds):
            order = b.sides if turn % 2 == 0 else b.sides[::-1]
            for side in order:
                seconds[side.label].append(drain_seconds(side, tasks, milliseconds))
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
                }
            )
    return rows
