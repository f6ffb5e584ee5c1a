"""The command-line client: ``python -m celeryref.client demo|queues|deadletters``.

``demo`` is the simple client of the source material: it prints progress while a
long task runs, then one row per task with the queue, the worker that ran it and
the result. ``deadletters`` lists, shows, replays and purges the dead-letter store.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from celery.result import AsyncResult

from celeryref import dead_letters, monitoring, queues
from celeryref.celery_app import app
from celeryref.errors import InvalidArguments
from celeryref.progress import read_progress
from celeryref.tasks import cpu_intensive, default, io_intensive, priority, scheduled


@dataclass
class Row:
    name: str
    queue: str
    result: AsyncResult


def submit_samples(fetch_url: str) -> list[Row]:
    """Send one or more sample tasks to every queue."""
    return [
        Row("add(2, 3)", queues.DEFAULT, default.add.delay(2, 3)),
        Row("multiply(4, 5)", queues.DEFAULT, default.multiply.delay(4, 5)),
        Row("summarize([1..5])", queues.DEFAULT, default.summarize.delay([1, 2, 3, 4, 5])),
        Row(
            "long_task(10)",
            queues.CPU_INTENSIVE,
            cpu_intensive.long_task.delay(10, work=200_000),
        ),
        Row("fetch_url(url)", queues.IO_INTENSIVE, io_intensive.fetch_url.delay(fetch_url)),
        Row(
            "health_check (top priority)",
            queues.PRIORITY,
            priority.health_check.apply_async(priority=queues.PRIORITY_TOP),
        ),
        Row(
            "beat_heartbeat('demo')",
            queues.SCHEDULED,
            scheduled.beat_heartbeat.delay("demo", note="sent by the demo client"),
        ),
    ]


def watch_progress(row: Row, timeout: float, out: Any) -> None:
    """Print ``PROGRESS`` updates of ``row`` until it finishes."""
    deadline = time.monotonic() + timeout
    last = None
    while not row.result.ready() and time.monotonic() < deadline:
        _, meta = read_progress(row.result)
        if meta is not None and meta != last:
            out.write(f"  {row.name}: {meta['percent']:5.1f}% {meta['status']}\n")
            out.flush()
            last = meta
        time.sleep(0.2)


def demo(fetch_url: str, timeout: float, out: Any = sys.stdout) -> int:
    out.write(f"queue depths before: {monitoring.queue_depths()}\n")
    rows = submit_samples(fetch_url)
    watch_progress(rows[3], timeout, out)
    failures = 0
    out.write(f"{'task':<40} {'queue':<14} {'worker':<28} result\n")
    for row in rows:
        try:
            value = row.result.get(timeout=timeout, propagate=True)
            worker = row.result.worker or "?"
        except Exception as exc:
            value, worker, failures = f"FAILED: {exc!r}", "-", failures + 1
        out.write(f"{row.name:<40} {row.queue:<14} {worker:<28} {value}\n")
    out.write(f"{len(rows) - failures} succeeded, {failures} failed\n")
    return 1 if failures else 0


def deadletters_command(args: argparse.Namespace) -> int:
    """``deadletters list|show|replay|purge``: operate the dead-letter store."""
    out = sys.stdout
    try:
        if args.action == "list":
            for entry in dead_letters.list_entries(args.limit, args.task):
                out.write(json.dumps(entry.summary()) + "\n")
        elif args.action == "show":
            entry = dead_letters.get(args.id)
            out.write(json.dumps(entry.summary(), indent=2) + "\n")
            out.write(f"args={json.dumps(entry.args)} kwargs={json.dumps(entry.kwargs)}\n")
            out.write(entry.traceback or "(no traceback)\n")
        elif args.action == "replay":
            task_id = dead_letters.replay(app, args.id, force=args.force)
            out.write(f"replayed dead letter {args.id} as task {task_id}\n")
        else:
            ids = args.ids or None
            if ids is None and args.older_than_days is None:
                raise InvalidArguments("purge needs ids or --older-than-days")
            count = dead_letters.purge(entry_ids=ids, older_than_days=args.older_than_days)
            out.write(f"purged {count} dead letter(s)\n")
    except InvalidArguments as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m celeryref.client")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="submit a sample task to every queue")
    p_demo.add_argument("--fetch-url", default="http://app:8000/healthz")
    p_demo.add_argument("--timeout", type=float, default=120.0, help="seconds per task")
    sub.add_parser("queues", help="print waiting messages per queue")
    p_dl = sub.add_parser("deadletters", help="list, show, replay or purge dead letters")
    dl = p_dl.add_subparsers(dest="action", required=True)
    p_list = dl.add_parser("list", help="newest first, one JSON object per line")
    p_list.add_argument("--limit", type=int, default=50)
    p_list.add_argument("--task", help="only this task name")
    dl.add_parser("show", help="one entry with arguments and traceback").add_argument(
        "id", type=int
    )
    p_replay = dl.add_parser("replay", help="re-send the task with the same arguments")
    p_replay.add_argument("id", type=int)
    p_replay.add_argument("--force", action="store_true", help="replay an entry again")
    p_purge = dl.add_parser("purge", help="delete entries by id or by age")
    p_purge.add_argument("ids", type=int, nargs="*")
    p_purge.add_argument("--older-than-days", type=float)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "queues":
        for queue, depth in monitoring.queue_depths().items():
            sys.stdout.write(f"{queue:<14} {depth}\n")
        return 0
    if args.command == "deadletters":
        return deadletters_command(args)
    return demo(args.fetch_url, args.timeout)


if __name__ == "__main__":
    app.set_current()
    sys.exit(main())
