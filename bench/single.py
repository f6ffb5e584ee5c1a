"""The physical limit of CPU tasks: N processes running ``burn_cpu`` back to back.

``python -m bench.single TASKS MILLISECONDS PROCESSES`` runs ``TASKS`` calls of
:func:`bench.work.burn_cpu` on ``PROCESSES`` processes (no Celery, no Redis) and
prints ``{"seconds": ..., "per_s": ...}``. The benchmark runs it inside the idle
``worker-cpu`` container, so it uses the same interpreter, libraries and machine as
the worker it is compared with, at the same moment of the run.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from bench.work import burn_cpu


def run(tasks: int, milliseconds: float, processes: int) -> dict[str, float]:
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(burn_cpu, [0.0] * processes))  # processes started before timing
        started = time.perf_counter()
        list(pool.map(burn_cpu, [milliseconds] * tasks))
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "per_s": round(tasks / seconds, 1)}


if __name__ == "__main__":
    tasks, milliseconds, processes = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    sys.stdout.write(json.dumps(run(tasks, milliseconds, processes)) + "\n")
