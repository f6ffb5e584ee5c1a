"""CLI commands other than ``demo``: submit, status, watch, queues, workers, deadletters."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from celeryref.celery_app import app
from celeryref.client.progress_bar import watch
from celeryref.errors import InvalidArguments
from celeryref.observability import queue_depth as monitoring
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.submission import submit as submission


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["x=1", "u=http://a"]`` -> ``{"x": 1, "u": "http://a"}`` (JSON values if they parse)."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidArguments(f"expected NAME=VALUE, got {pair!r}")
        try:
            args[key] = json.loads(raw)
        except json.JSONDecodeError:
            args[key] = raw
    return args


def submit_command(args: argparse.Namespace) -> int:
    kwargs = json.loads(args.json) if args.json else parse_assignments(args.arg)
    result = submission.submit(
        app, args.task, kwargs, priority=args.priority, idempotency_key=args.key
    )
    sys.stdout.write(f"{result.id}\n")
    if not args.watch:
        return 0
    return _finish(result.id, args.timeout)


def _finish(task_id: str, timeout: float) -> int:
    result = app.AsyncResult(task_id)
    state = watch(result, sys.stdout, timeout)
    body = submission.status(app, task_id)
    sys.stdout.write(json.dumps(body, default=str) + "\n")
    return 0 if state == "SUCCESS" else 1


def status_command(args: argparse.Namespace) -> int:
    submission.require_known(args.task_id)
    if args.watch:
        return _finish(args.task_id, args.timeout)
    sys.stdout.write(json.dumps(submission.status(app, args.task_id), default=str) + "\n")
    return 0


def queues_command(_: argparse.Namespace) -> int:
    for queue, depth in monitoring.queue_depths().items():
        sys.stdout.write(f"{queue:<14} {depth}\n")
    return 0


def workers_command(args: argparse.Namespace) -> int:
    """One line per worker that answers within ``--timeout``; exit 1 if none does."""
    inspect = app.control.inspect(timeout=args.timeout)
    queues = inspect.active_queues() or {}
    if not queues:
        sys.stderr.write(f"no worker answered within {args.timeout}s\n")
        return 1
    active = inspect.active() or {}
    for name in sorted(queues):
        consumed = ",".join(sorted(q["name"] for q in queues[name]))
        sys.stdout.write(f"{name:<40} {consumed:<16} active={len(active.get(name, []))}\n")
    return 0


def deadletters_command(args: argparse.Namespace) -> int:
    """``deadletters list|show|replay|purge``: operate the dead-letter store."""
    out = sys.stdout
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
        submission.remember(task_id, dead_letters.get(args.id).task_name)
        out.write(f"replayed dead letter {args.id} as task {task_id}\n")
    else:
        if not args.ids and args.older_than_days is None:
            raise InvalidArguments("purge needs ids or --older-than-days")
        count = dead_letters.purge(entry_ids=args.ids or None, older_than_days=args.older_than_days)
        out.write(f"purged {count} dead letter(s)\n")
    return 0
