"""The command-line client (one entry point in the image): ``python -m celeryref.client``.

::

    demo                               sample work on every queue, summary table
    submit TASK [NAME=VALUE ...]       a catalog task; --watch shows a progress bar
    status TASK_ID [--watch]           state, progress, result or error
    queues | workers                   the scaling signals
    deadletters list|show|replay|purge the dead-letter store

Bad input or an unknown id (:class:`~celeryref.errors.NotFound`) prints ``error: ...``
and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from celeryref.celery_app import app
from celeryref.client import commands
from celeryref.client.demo import demo
from celeryref.errors import InvalidArguments, NotFound
from celeryref.submission.catalog import CATALOG


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m celeryref.client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_demo = sub.add_parser("demo", help="submit sample work to every queue")
    p_demo.add_argument("--fetch-url", default="http://app:8000/healthz")
    p_demo.add_argument("--timeout", type=float, default=120.0, help="seconds per task")

    p_submit = sub.add_parser("submit", help="submit a catalog task")
    p_submit.add_argument("task", help=f"one of {sorted(CATALOG)}")
    p_submit.add_argument("arg", nargs="*", help="NAME=VALUE (VALUE parsed as JSON if it can)")
    p_submit.add_argument("--json", help="all arguments as one JSON object")
    p_submit.add_argument("--priority", type=int, choices=range(10), help="0 is the highest")
    p_submit.add_argument("--key", help="idempotency key")
    p_submit.add_argument("--watch", action="store_true", help="show progress, then the result")
    p_submit.add_argument("--timeout", type=float, default=600.0)

    p_status = sub.add_parser("status", help="state, progress, result or error of a task")
    p_status.add_argument("task_id")
    p_status.add_argument("--watch", action="store_true")
    p_status.add_argument("--timeout", type=float, default=600.0)

    sub.add_parser("queues", help="waiting messages per queue")
    p_workers = sub.add_parser("workers", help="workers, their queues and load")
    p_workers.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for replies (default 2)"
    )

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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": lambda a: demo(a.fetch_url, a.timeout, sys.stdout),
    "submit": commands.submit_command,
    "status": commands.status_command,
    "queues": commands.queues_command,
    "workers": commands.workers_command,
    "deadletters": commands.deadletters_command,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (InvalidArguments, NotFound) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    app.set_current()
    sys.exit(main())
