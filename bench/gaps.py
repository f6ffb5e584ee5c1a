"""Where the gap between two CPU tasks of one ``worker-cpu`` process goes.

``KEEP_BENCH=1 python -m bench --medium --only cpu`` leaves the bench stack up; then
``python -m bench.gaps [TASKS] [MILLISECONDS]`` sends ``TASKS`` (200) CPU tasks of
``MILLISECONDS`` (50) to the deployment's ``worker-cpu`` and splits each gap between
two tasks of one pool process (section 6b's gap column) into the steps that fill it:

* the task's end → its result meta's ``date_done`` (the pool process, before it
  stores the result);
* ``date_done`` → the worker's ``task-succeeded`` event (the result stored, handed to
  the main process over the pool's pipe, the main process awake to read it);
* ``task-succeeded`` → the next task's ``task-received`` event (the acknowledgement and
  the fetch of the next message: prefetch 1, F1);
* ``task-received`` → ``task-started`` (the job handed to a free pool process, which
  tells the main process it took it);
* ``task-started`` → the next task's start (its STARTED write with the delivery
  count, F22).

The stamps come from the tasks themselves (:func:`bench.work.burn_cpu`), the stored
meta and the worker's own task events (Flower's), all on this machine's clock. Plain
Celery sends no events by default, so only its whole gap is known (section 6b).
Prints one line per step: median, mean, 90th percentile and maximum in milliseconds.
"""

from __future__ import annotations

import datetime
import itertools
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import stack as bench_stack
from devtools.harness import read_env_file

STEPS = (
    ("end -> date_done", "end", "done"),
    ("date_done -> task-succeeded", "done", "succeeded"),
    ("task-succeeded -> next task-received", "succeeded", "+received"),
    ("task-received -> task-started", "+received", "+started"),
    ("task-started -> next start", "+started", "+start"),
    ("gap: end -> next start", "end", "+start"),
)
EVENTS = {"task-received": "received", "task-started": "started", "task-succeeded": "succeeded"}


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    moment = datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return float(moment.timestamp())


def _listen(app: Any, stamps: dict[str, dict[str, float]], ready: threading.Event) -> None:
    def on_event(event: dict[str, Any]) -> None:
        stamps.setdefault(event["uuid"], {})[EVENTS[event["type"]]] = event["timestamp"]

    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers=dict.fromkeys(EVENTS, on_event))
        ready.set()
        receiver.capture(limit=None, timeout=None, wakeup=False)


def steps(tasks: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    """Per step, its seconds for each pair of consecutive tasks of one process (a task's
    stamps: ``start``, ``end``, ``pid``, ``done``, ``received``, ``started``,
    ``succeeded``; ``+name`` is the next task's)."""
    by_process: dict[float, list[dict[str, float]]] = {}
    for stamps in tasks.values():
        by_process.setdefault(stamps["pid"], []).append(stamps)
    found: dict[str, list[float]] = {name: [] for name, _, _ in STEPS}
    for own in by_process.values():
        own.sort(key=lambda stamps: stamps["start"])
        for before, after in itertools.pairwise(own):
            pair = {**before, **{f"+{key}": value for key, value in after.items()}}
            if all(key in pair for _, a, b in STEPS for key in (a, b)):
                for name, a, b in STEPS:
                    found[name].append(pair[b] - pair[a])
    return found


def main(count: int, milliseconds: float) -> None:
    os.environ.update(bench_stack.stack_env(os.environ, read_env_file(Path(".env"))))
    import redis  # settings are read at import: only now

    from bench import sides
    from celeryref.celery_app import app
    from celeryref.settings import settings

    side = sides.deployment(app, redis.Redis.from_url(settings.broker_url))
    stamps: dict[str, dict[str, float]] = {}
    ready = threading.Event()
    threading.Thread(target=_listen, args=(app, stamps, ready), daemon=True).start()
    ready.wait(30)
    sent = time.time()
    queue = side.queue("cpu")
    results = [
        side.app.send_task(sides.BURN, args=[milliseconds], queue=queue) for _ in range(count)
    ]
    tasks: dict[str, dict[str, float]] = {}
    for result in results:
        start, end, pid = result.get(timeout=3600)
        meta = result._cache or {}
        tasks[result.id] = {"start": start, "end": end, "pid": pid}
        done = _timestamp(meta.get("date_done"))
        if done is not None:
            tasks[result.id]["done"] = done
    last = max(task["end"] for task in tasks.values())
    deadline = time.monotonic() + 10  # the events are batched (0.1 s): wait for the last
    while time.monotonic() < deadline and not all(
        "succeeded" in stamps.get(tid, {}) for tid in tasks
    ):
        time.sleep(0.1)
    for tid, task in tasks.items():
        task.update(stamps.get(tid, {}))
    sys.stdout.write(f"{count} tasks of {milliseconds} ms: {count / (last - sent):.1f}/s\n")
    for name, seconds in steps(tasks).items():
        ms = sorted(s * 1000 for s in seconds) or [0.0]
        sys.stdout.write(
            f"{name:40s} p50 {statistics.median(ms):6.2f}  mean {statistics.fmean(ms):6.2f}"
            f"  p90 {ms[int(len(ms) * 0.9)]:6.2f}  max {ms[-1]:6.2f} ms  ({len(seconds)} pairs)\n"
        )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 200,
        float(sys.argv[2]) if len(sys.argv) > 2 else 50.0,
    )
