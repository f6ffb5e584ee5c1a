"""Postgres access: one connection pool per process, borrowed through a context manager.

Worker processes open the pool at process init and close it at shutdown (see
:mod:`celeryref.app.signals`); any other process opens it on first use. A pool
inherited across ``fork`` is never reused: the child opens its own.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg2 import extensions
from psycopg2.pool import ThreadedConnectionPool

from celeryref.settings import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ThreadedConnectionPool | None = None
_pool_pid: int | None = None
#: Pools inherited across fork. Kept referenced and never closed here: closing (or
#: garbage-collecting) a libpq connection sends the server a Terminate message on
#: a socket the parent process still uses, which would kill the parent's session.
_inherited: list[ThreadedConnectionPool] = []


def open_pool(minconn: int | None = None, maxconn: int | None = None) -> ThreadedConnectionPool:
    """Open this process's pool (idempotent) and return it."""
    global _pool, _pool_pid
    with _lock:
        if _pool is not None and _pool_pid == os.getpid() and not _pool.closed:
            return _pool
        if _pool is not None and _pool_pid != os.getpid():
            _inherited.append(_pool)
        _pool = ThreadedConnectionPool(
            minconn if minconn is not None else settings.db_pool_min,
            maxconn if maxconn is not None else settings.db_pool_max,
            dsn=settings.database_dsn,
            connect_timeout=5,
            application_name=f"celeryref:{os.getpid()}",
        )
        _pool_pid = os.getpid()
        logger.info("postgres pool opened in pid %s", _pool_pid)
        return _pool


def close_pool() -> None:
    """Close this process's pool; a pool inherited from a parent is left alone."""
    global _pool, _pool_pid
    with _lock:
        if _pool is not None and _pool_pid == os.getpid() and not _pool.closed:
            _pool.closeall()
            logger.info("postgres pool closed in pid %s", _pool_pid)
        elif _pool is not None and _pool_pid != os.getpid():
            _inherited.append(_pool)
        _pool, _pool_pid = None, None


def discard_pool() -> None:
    """Forget this process's pool after a database error; the next borrow opens a new one.

    The old pool is not closed: other threads (``worker-io`` runs 32) may still hold
    its connections, and ``putconn`` into a closed pool raises. They return them to
    the old pool, whose connections close when the last reference to it is gone.
    """
    global _pool, _pool_pid
    with _lock:
        if _pool is not None and _pool_pid == os.getpid():
            logger.info("postgres pool discarded in pid %s", _pool_pid)
            _pool, _pool_pid = None, None


def fetch_one(cursor: extensions.cursor) -> tuple[Any, ...]:
    """The next row of ``cursor``; a query that must return a row and did not is a bug."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("query returned no row")
    return tuple(row)


@contextmanager
def connection() -> Iterator[extensions.connection]:
    """Borrow a connection; commit on success, roll back on error, always return it.

    A connection found broken is discarded instead of being returned to the pool.
    """
    pool = open_pool()
    conn = pool.getconn()
    try:
        with conn:  # psycopg2: commit on success, rollback on exception
            yield conn
    finally:
        pool.putconn(conn, close=bool(conn.closed))
