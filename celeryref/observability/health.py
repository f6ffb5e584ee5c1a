"""Container healthchecks: ``python -m celeryref.observability.health worker|beat|http ...``.

* ``worker QUEUE``: the worker of this container proved, less than ``--max-age``
  seconds ago, that its consumer loop runs, reaches Redis (a ``PING`` on its
  connection) and consumes ``QUEUE`` (:mod:`celeryref.observability.liveness`). A
  worker that is alive but disconnected from Redis, stuck, or not subscribed to its
  queue, fails. The check reads a file: no Celery import, no broker round trip (it
  asked the worker over the broker until issue 15: ~0.58 s of CPU per check).
* ``beat``: a beat holds the single-beat lock (this one, or another one while this
  one waits in standby).
* ``http URL``: ``URL`` answers 2xx within the timeout.

Exit status 0 means healthy; anything else prints the reason on stderr.
"""

from __future__ import annotations

import argparse
import socket
import sys

from celeryref.observability import liveness


def node_name(queue: str, hostname: str | None = None) -> str:
    """The Celery node name a worker of ``queue`` runs under (``-n QUEUE@%h``)."""
    return f"{queue}@{hostname or socket.gethostname()}"


def check_worker(queue: str, max_age: float = liveness.MAX_AGE_SECONDS) -> str | None:
    """Why this container's worker does not prove it consumes ``queue``, or ``None``."""
    return liveness.problem(queue, max_age)


def check_beat() -> str | None:
    from celeryref.adapters import redis_state
    from celeryref.app.single_beat import LOCK_KEY

    if not redis_state.client().exists(LOCK_KEY):
        return f"no beat holds the lock {LOCK_KEY}"
    return None


def check_http(url: str, timeout: float) -> str | None:
    import urllib.request  # here: 50 ms of imports the worker check does not pay

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
    worker = sub.add_parser("worker")
    worker.add_argument("queue")
    worker.add_argument("--max-age", type=float, default=liveness.MAX_AGE_SECONDS,
                        help="seconds a liveness proof stays valid")  # fmt: skip
    sub.add_parser("beat")
    sub.add_parser("http").add_argument("url")
    args = parser.parse_args(argv)

    if args.kind == "worker":
        problem = check_worker(args.queue, args.max_age)
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
