"""Worker-process resources (SPEC F4): the Postgres pool opens at process init.

* prefork/solo: ``worker_process_init`` fires in each pool process after fork; the
  pool is opened there and closed at ``worker_process_shutdown``.
* threads: tasks run in the main process, which gets no ``worker_process_init``;
  the pool is opened once the worker is ready and closed at ``worker_shutdown``.

A database that is down at start-up does not crash the process: the pool then
opens on first use, when the task's own retry policy applies.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg2
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from celeryref.adapters import db

logger = logging.getLogger(__name__)


def _open_pool() -> None:
    try:
        db.open_pool()
    except psycopg2.OperationalError as exc:
        logger.warning("postgres not reachable at process init (%s); opening on first use", exc)


@worker_process_init.connect
def open_process_pool(**_: Any) -> None:
    _open_pool()


@worker_process_shutdown.connect
def close_process_pool(**_: Any) -> None:
    db.close_pool()


@worker_ready.connect
def open_main_process_pool(sender: Any = None, **_: Any) -> None:
    if isinstance(getattr(sender, "pool", None), ThreadTaskPool):
        _open_pool()


@worker_shutdown.connect
def close_main_process_pool(**_: Any) -> None:
    db.close_pool()
