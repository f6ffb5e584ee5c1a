"""Worker-process resources (SPEC F4): the Postgres pool opens at process init.

A process that stops writes its unwritten task metrics first
(:func:`celeryref.observability.task_stats.flush`).

* prefork/solo: ``worker_process_init`` fires in each pool process after fork; the
  pool is opened there and closed at ``worker_process_shutdown``.
* threads: tasks run in the main process, which gets no ``worker_process_init``;
  the pool is opened once the worker is ready and closed at ``worker_shutdown``.

A database that is down at start-up does not crash the process: the pool then
opens on first use, when the task's own retry policy applies.

Logging (:mod:`celeryref.observability.logs`) is configured here too, see
:func:`configure_logging`; and every task publish gets its publish id here
(:func:`celeryref.reliability.put_once.stamp`, F25).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg2
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.signals import (
    before_task_publish,
    import_modules,
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from celery.utils.log import get_multiprocessing_logger

from celeryref.adapters import db
from celeryref.observability import logs, task_stats
from celeryref.reliability import put_once

logger = logging.getLogger(__name__)


def _open_pool() -> None:
    try:
        db.open_pool()
    except psycopg2.OperationalError as exc:
        logger.warning("postgres not reachable at process init (%s); opening on first use", exc)


@worker_process_init.connect
def open_process_pool(**_: Any) -> None:
    _open_pool()


def _flush_task_stats() -> None:
    try:
        task_stats.flush()
    except Exception as exc:
        logger.warning("task stats of this process not written (%r)", exc)


@worker_process_shutdown.connect
def close_process_pool(**_: Any) -> None:
    _flush_task_stats()
    db.close_pool()


@worker_ready.connect
def open_main_process_pool(sender: Any = None, **_: Any) -> None:
    if isinstance(getattr(sender, "pool", None), ThreadTaskPool):
        _open_pool()


@worker_shutdown.connect
def close_main_process_pool(**_: Any) -> None:
    _flush_task_stats()  # threads/solo pools: the tasks ran in this process
    db.close_pool()


@setup_logging.connect
def configure_logging(loglevel: int | None = None, **_: Any) -> None:
    """Worker and beat log through :func:`celeryref.observability.logs.configure`.

    ``setup_logging``, not ``after_setup_logger``/``after_setup_task_logger``: in
    ``celery.app.log.Logging.setup_logging_subsystem`` (Celery 5.7) a connected
    ``setup_logging`` receiver makes Celery skip its whole set-up (emptying the root
    logger, a ``ColorFormatter`` handler on the root and on ``multiprocessing``, a
    ``TaskFormatter`` handler on ``celery.task`` with ``propagate=False``). The
    ``after_*`` signals fire once those handlers exist, so we would be re-dressing
    three of them; here task loggers simply propagate to our root handler, which
    adds the task id and name itself. Two things Celery then leaves to us: the
    ``multiprocessing`` (billiard) logger, given to the root at ERROR as Celery does,
    and ``worker_redirect_stdouts``, which Celery skips (``print`` in a task goes to
    stdout as is; product code logs, it does not print).

    ``loglevel`` is ``--loglevel``; ``LOG_LEVEL``, when set, wins.
    """
    logs.configure(level=loglevel or logging.WARNING)
    billiard = get_multiprocessing_logger()
    if billiard is not None:
        billiard.propagate = True
        billiard.setLevel(logging.ERROR)


@import_modules.connect
def configure_flower_logging(**_: Any) -> None:
    """Flower (``celery flower``) never asks Celery to set up logging; the first Celery
    signal it sends is this one (``Flower.__init__`` imports the task modules), after
    Tornado put its own handler on the root, which :func:`~celeryref.observability.logs.configure`
    replaces. Workers and beat send it too, before ``setup_logging``; a process whose
    logging is configured already is left as it is.
    """
    if not logs.is_configured():
        logs.configure()


#: Every task publish gets a new id, so kombu's retry of it is pushed once (F25).
before_task_publish.connect(put_once.stamp, weak=False)
