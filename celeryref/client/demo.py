"""``demo``: submit sample work to every queue and run every pattern; two summary tables.

The first part is the simple client of the source material: it shows live progress
of the long task, then one row per task with its queue, the worker that ran it and
the result. The second runs every pattern of :mod:`celeryref.client.patterns`
(canvas, a DAG workflow, a map-reduce job), each row checked against the value it
must produce.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TextIO

from celery.result import AsyncResult

from celeryref import queues
from celeryref.celery_app import app
from celeryref.client import patterns
from celeryref.client.progress_bar import watch
from celeryref.observability import queue_depth as monitoring
from celeryref.submission import submit as submission


@dataclass
class Row:
    name: str
    queue: str
    result: AsyncResult


def submit_samples(fetch_url: str) -> list[Row]:
    """Send one or more catalog tasks to every queue."""

    def send(name: str, args: dict[str, Any], **options: Any) -> AsyncResult:
        return submission.submit(app, name, args, **options)

    heartbeat = app.send_task(
        f"{queues.TASK_PACKAGE}.scheduled.beat_heartbeat",
        args=["demo"],
        kwargs={"note": "sent by the demo client"},
    )
    return [
        Row("add(2, 3)", queues.DEFAULT, send("add", {"x": 2, "y": 3})),
        Row("multiply(4, 5)", queues.DEFAULT, send("multiply", {"x": 4, "y": 5})),
        Row("summarize([1..5])", queues.DEFAULT, send("summarize", {"numbers": [1, 2, 3, 4, 5]})),
        Row("long_task(10)", queues.CPU_INTENSIVE, send("long_task", {"n": 10, "work": 1_000_000})),
        Row("fetch_url(url)", queues.IO_INTENSIVE, send("fetch_url", {"url": fetch_url})),
        Row(
            "health_check (top priority)",
            queues.PRIORITY,
            send("health_check", {}, priority=queues.PRIORITY_TOP),
        ),
        Row("beat_heartbeat('demo')", queues.SCHEDULED, heartbeat),
    ]


def demo(fetch_url: str, timeout: float, out: TextIO) -> int:
    out.write(f"queue depths before: {monitoring.queue_depths()}\n")
    started = time.monotonic()
    rows = submit_samples(fetch_url)
    started_patterns = patterns.start()
    watch(rows[3].result, out, timeout, label="  long_task ")
    failures = 0
    out.write(f"{'task':<32} {'queue':<14} {'worker':<30} result\n")
    for row in rows:
        try:
            value = row.result.get(timeout=timeout, propagate=True)
            worker = row.result.worker or "?"
        except Exception as exc:
            value, worker, failures = f"FAILED: {exc!r}", "-", failures + 1
        out.write(f"{row.name:<32} {row.queue:<14} {worker:<30} {value}\n")
    out.write(f"{len(rows) - failures} succeeded, {failures} failed\n\n")
    wrong = patterns.report(started_patterns, timeout, out)
    elapsed = time.monotonic() - started
    out.write(
        f"patterns: {len(started_patterns) - wrong} ok, {wrong} wrong; {elapsed:.1f}s in all\n"
    )
    return 1 if failures or wrong else 0
