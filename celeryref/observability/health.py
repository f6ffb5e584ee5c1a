"""Container healthchecks: ``python -m celeryref.observability.health worker|beat|http ...``.

* ``worker QUEUE``: the worker node ``QUEUE@<hostname>`` of this container answers a
  control request over the broker and reports that it consumes ``QUEUE``. A worker
  that is alive but disconnected from Redis, or not subscribed to its queue, fails.
* ``beat``: a beat holds the single-beat lock (this one, or another one while this
  one waits in standby).
* ``http URL``: ``URL`` answers 2xx within the timeout.

Exit status 0 means healthy; anything else prints the reason on stderr.
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.request


def node_name(queue: str, hostname: str | None = None) -> str:
    """The Celery node name a worker of ``queue`` runs under (``-n QUEUE@%h``)."""
    return f"{queue}@{hostname or socket.gethostname()}"


def check_worker(queue: str, timeout: float) -> str | None:
    from celeryref.celery_app import app

    node = node_name(queue)
    replies = app.control.inspect(destination=[node], timeout=timeout, limit=1).active_queues()
    if not replies or node not in replies:
        return f"worker {node} did not answer within {timeout}s"
    consumed = {q["name"] for q in replies[node]}
    if queue not in consumed:
        return f"worker {node} consumes {sorted(consumed)}, not {queue!r}"
    return None


def check_beat() -> str | None:
    from celeryref.adapters import redis_state
    from celeryref.app.single_beat import LOCK_KEY

    if not redis_state.client().exists(LOCK_KEY):
        return f"no beat holds the lock {LOCK_KEY}"
    return None


def check_http(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                return f"{url} answered {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celeryref.observability.health")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    sub = parser.add_subparsers(dest="kind", required=True)
    sub.add_parser("worker").add_argument("queue")
    sub.add_parser("beat")
    sub.add_parser("http").add_argument("url")
    args = parser.parse_args(argv)

    if args.kind == "worker":
        problem = check_worker(args.queue, args.timeout)
    elif args.kind == "beat":
        problem = check_beat()
    else:
        problem = check_http(args.url, args.timeout)
    if problem:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
