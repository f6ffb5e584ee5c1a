"""Postgres access: one connection pool per process, borrowed through a context manager.

Worker processes open the pool at process init and close it at shutdown (see
:mod:`celeryref.app.signals`); any other process opens it on first use. A pool
inherited across ``fork`` is never reused: the child opens its own.

A borrower waits, bounded, for a free connection: psycopg2's ``ThreadedConnectionPool``
raises ``PoolError`` the moment all ``DB_POOL_MAX`` connections are out (the API's 40
request threads behind 4 connections answered 500 to most of 64 concurrent reads), so
:class:`WaitingPool` puts a semaphore of ``DB_POOL_MAX`` slots in front of ``getconn``.
A thread that finds no slot within ``DB_POOL_TIMEOUT`` seconds gets
:class:`~celeryref.errors.DatabaseUnavailable`: transient for a task (retried), 503 +
``Retry-After`` from the API. Where the pool has one connection per thread (worker-io:
32 and 32; the API: ``API_THREADS`` and ``DB_POOL_MAX`` both 8) nobody ever waits.
Returned connections stay open for the next borrower (psycopg2 closed all but
``DB_POOL_MIN``); after a Postgres restart each idle one fails its next use once.
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

from celeryref.errors import DatabaseUnavailable
from celeryref.settings import settings

logger = logging.getLogger(__name__)


class WaitingPool(ThreadedConnectionPool):
    """A ``ThreadedConnectionPool`` whose ``getconn`` waits up to ``timeout`` seconds for
    a free connection, then raises :class:`~celeryref.errors.DatabaseUnavailable`
    (never ``PoolError``), and that keeps returned connections open for reuse (up to
    ``maxconn``). Each ``getconn`` takes a slot that its ``putconn`` gives back.
    """

    def __init__(self, minconn: int, maxconn: int, *args: Any, timeout: float, **kwargs: Any):
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(maxconn)
        super().__init__(minconn, maxconn, *args, **kwargs)
        # psycopg2 keeps at most ``minconn`` idle connections and closes any other on
        # return (``_putconn``), so every borrow beyond ``minconn`` opened a new one (TCP,
        # DNS, SCRAM auth) inside the pool's lock: under load the API's threads queued
        # behind connects. Keep up to ``maxconn``; ``minconn`` is otherwise read only at
        # start-up (connections opened at once).
        self.minconn = maxconn

    def getconn(self, key: Any = None) -> extensions.connection:
        if not self._slots.acquire(timeout=self.timeout):
            raise DatabaseUnavailable(
                f"no Postgres connection free within {self.timeout:g}s "
                f"(all {self.maxconn} of this process's pool are in use)"
            )
        try:
            return super().getconn(key)
        except BaseException:
            self._slots.release()
            raise

    def putconn(self, conn: Any = None, key: Any = None, close: bool = False) -> None:
        try:
            super().putconn(conn, key, close)
        finally:
            self._slots.release()


_lock = threading.Lock()
_pool: WaitingPool | None = None
_pool_pid: int | None = None
#: Pools inherited across fork. Kept referenced and never closed here: closing (or
#: garbage-collecting) a libpq connection sends the server a Terminate message on
#: a socket the parent process still uses, which would kill the parent's session.
_inherited: list[ThreadedConnectionPool] = []


def open_pool(
    minconn: int | None = None, maxconn: int | None = None, timeout: float | None = None
) -> WaitingPool:
    """Open this process's pool (idempotent) and return it; ``timeout`` is the longest
    wait for a free connection (``DB_POOL_TIMEOUT``)."""
    global _pool, _pool_pid
    with _lock:
        if _pool is not None and _pool_pid == os.getpid() and not _pool.closed:
            return _pool
        if _pool is not None and _pool_pid != os.getpid():
            _inherited.append(_pool)
        _pool = WaitingPool(
            minconn if minconn is not None else settings.db_pool_min,
            maxconn if maxconn is not None else settings.db_pool_max,
            timeout=timeout if timeout is not None else settings.db_pool_timeout,
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

    Waits up to ``DB_POOL_TIMEOUT`` for one (:class:`WaitingPool`). A connection found
    broken is discarded instead of being returned to the pool.
    """
    pool = open_pool()
    conn = pool.getconn()
    try:
        with conn:  # psycopg2: commit on success, rollback on exception
            yield conn
    finally:
        pool.putconn(conn, close=bool(conn.closed))
