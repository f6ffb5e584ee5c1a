"""The bounded error log and the per-exception-type error callbacks (SPEC F9).

Every failed attempt is logged to a Redis list trimmed to the newest
:data:`ERROR_LOG_SIZE` entries, shared by all workers. Callbacks registered with
:func:`on_error` run in the worker process that saw the error, e.g. to drop a
connection pool that a database restart has broken.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg2

from celeryref.adapters import db, redis_state
from celeryref.errors import Classification, DatabaseUnavailable

logger = logging.getLogger(__name__)

#: Entries kept in the error log (newest first).
ERROR_LOG_SIZE = 1000
ERROR_LOG_KEY = redis_state.key("errors")

ErrorCallback = Callable[[BaseException], None]
_callbacks: list[tuple[type[BaseException], ErrorCallback]] = []


def on_error(*exc_types: type[BaseException]) -> Callable[[ErrorCallback], ErrorCallback]:
    """Register the decorated function to run when a task raises one of ``exc_types``."""

    def register(fn: ErrorCallback) -> ErrorCallback:
        _callbacks.extend((t, fn) for t in exc_types)
        return fn

    return register


def run_callbacks(exc: BaseException) -> list[str]:
    """Run every callback registered for ``exc``'s type; return their names.

    A failing callback is logged and does not hide the task's own error.
    """
    ran: list[str] = []
    for exc_type, fn in _callbacks:
        if isinstance(exc, exc_type):
            try:
                fn(exc)
                ran.append(fn.__name__)
            except Exception:
                logger.exception("error callback %s failed", fn.__name__)
    return ran


def log_error(
    task_name: str, task_id: str, exc: BaseException, classification: Classification, retries: int
) -> None:
    """Push one failed attempt onto the bounded error log."""
    entry = {
        "task": task_name,
        "task_id": task_id,
        "error": f"{type(exc).__name__}: {exc}"[:2000],
        "category": classification.category,
        "severity": classification.severity.name.lower(),
        "transient": classification.transient,
        "retries": retries,
        "at": time.time(),
    }
    pipe = redis_state.client().pipeline(transaction=False)
    pipe.lpush(ERROR_LOG_KEY, json.dumps(entry))
    pipe.ltrim(ERROR_LOG_KEY, 0, ERROR_LOG_SIZE - 1)
    pipe.execute()


def recent_errors(limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` error log entries, newest first."""
    return [json.loads(e) for e in redis_state.client().lrange(ERROR_LOG_KEY, 0, limit - 1)]


@on_error(DatabaseUnavailable, psycopg2.OperationalError, psycopg2.InterfaceError)
def reset_db_pool(exc: BaseException) -> None:
    """Drop this process's Postgres pool: its connections may point at a dead server."""
    logger.warning("resetting the postgres pool after %s", type(exc).__name__)
    db.discard_pool()
