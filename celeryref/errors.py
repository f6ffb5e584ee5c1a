"""The exceptions tasks raise, how library errors map onto them, and what follows.

::

    TaskError                      base of every error this package raises on purpose
     +-- TransientError            may succeed later: retried with backoff (celeryref.retry)
     |    +-- UpstreamUnavailable      a dependency timed out, refused, or answered 5xx
     |    +-- DatabaseUnavailable      Postgres connection lost / server restarting
     |    +-- CircuitOpen              the shared breaker refuses calls for ``retry_after`` s
     |    +-- DuplicateInProgress      another worker runs the same idempotency key now
     +-- PermanentError            fails the same way every time: never retried,
          |                        dead-lettered at once (celeryref.dead_letters)
          +-- BadRequestUpstream       a dependency answered 4xx to what we sent
          +-- InvalidArguments         the task was called with arguments it cannot use

Library exceptions are not rewrapped where they are raised; :func:`classify` maps
any exception to a :class:`Classification` (retry or not, and a severity) at the
one place that decides: the task base class. Unknown exceptions (``ValueError``,
``KeyError`` from our own code: bugs) are permanent: retrying a bug only
multiplies it. Tasks reject bad input explicitly with :class:`InvalidArguments`.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass

import psycopg2
import redis
import requests
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded


class TaskError(Exception):
    """Base of every error this package raises on purpose."""


class TransientError(TaskError):
    """A failure that may go away by itself; the task is retried with backoff."""


class UpstreamUnavailable(TransientError):
    """A dependency timed out, refused the connection, or answered with a 5xx."""


class DatabaseUnavailable(TransientError):
    """Postgres could not be reached or dropped the connection."""


class CircuitOpen(TransientError):
    """The shared circuit breaker ``name`` is open; try again in ``retry_after`` seconds."""

    def __init__(self, name: str, retry_after: float = 0.0) -> None:
        # args stay (name, retry_after) so the JSON result backend can rebuild it.
        super().__init__(name, retry_after)
        self.name = name
        self.retry_after = float(retry_after)

    def __str__(self) -> str:
        return f"circuit {self.name!r} is open; retry in {self.retry_after:.1f}s"


class DuplicateInProgress(TransientError):
    """Another worker is running the same idempotency key right now."""


class PermanentError(TaskError):
    """A failure that repeats on every attempt; the task is not retried."""


class BadRequestUpstream(PermanentError):
    """A dependency refused our request (HTTP 4xx): sending it again cannot help."""


class InvalidArguments(PermanentError):
    """The task's arguments are unusable (wrong type, out of range, missing)."""


class Severity(enum.IntEnum):
    """How loudly a failure is reported. ``CRITICAL`` pages operators (priority queue)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True)
class Classification:
    """What the base class does with an exception."""

    #: Retry with backoff (until the policy's ``max_retries``)?
    transient: bool
    severity: Severity
    #: A stable name for logs, metrics and the dead-letter store.
    category: str


_TRANSIENT_LIBRARY_ERRORS: tuple[tuple[type[BaseException], str, Severity], ...] = (
    (redis.ConnectionError, "redis_unavailable", Severity.HIGH),
    (redis.TimeoutError, "redis_unavailable", Severity.HIGH),
    (requests.exceptions.ChunkedEncodingError, "upstream_unavailable", Severity.MEDIUM),
    (requests.ConnectionError, "upstream_unavailable", Severity.MEDIUM),
    (requests.Timeout, "upstream_timeout", Severity.MEDIUM),
    (psycopg2.OperationalError, "database_unavailable", Severity.HIGH),
    (psycopg2.InterfaceError, "database_unavailable", Severity.HIGH),
    (SoftTimeLimitExceeded, "soft_time_limit", Severity.MEDIUM),
    (socket.timeout, "network_timeout", Severity.MEDIUM),
    (ConnectionError, "network_error", Severity.MEDIUM),
)
_PERMANENT_LIBRARY_ERRORS: tuple[tuple[type[BaseException], str, Severity], ...] = (
    (psycopg2.IntegrityError, "database_integrity", Severity.HIGH),
    (psycopg2.DataError, "database_data", Severity.MEDIUM),
    (psycopg2.ProgrammingError, "database_programming", Severity.CRITICAL),
    (TimeLimitExceeded, "hard_time_limit", Severity.HIGH),
    (requests.HTTPError, "upstream_http_error", Severity.MEDIUM),
)

#: HTTP statuses that mean "later", not "never": server errors, timeout, rate limit.
RETRYABLE_HTTP_STATUSES = frozenset({408, 429})


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def classify(exc: BaseException) -> Classification:
    """Map ``exc`` to retry-or-not and a severity. Unknown errors are permanent, HIGH."""
    if isinstance(exc, CircuitOpen):
        return Classification(True, Severity.LOW, "circuit_open")
    if isinstance(exc, DuplicateInProgress):
        return Classification(True, Severity.LOW, "duplicate_in_progress")
    if isinstance(exc, UpstreamUnavailable):
        return Classification(True, Severity.MEDIUM, "upstream_unavailable")
    if isinstance(exc, DatabaseUnavailable):
        return Classification(True, Severity.HIGH, "database_unavailable")
    if isinstance(exc, TransientError):
        return Classification(True, Severity.MEDIUM, "transient")
    if isinstance(exc, BadRequestUpstream):
        return Classification(False, Severity.MEDIUM, "upstream_bad_request")
    if isinstance(exc, InvalidArguments):
        return Classification(False, Severity.MEDIUM, "invalid_arguments")
    if isinstance(exc, PermanentError):
        return Classification(False, Severity.HIGH, "permanent")
    if isinstance(exc, requests.HTTPError):
        status = _http_status(exc)
        if status is not None and (status >= 500 or status in RETRYABLE_HTTP_STATUSES):
            return Classification(True, Severity.MEDIUM, "upstream_unavailable")
    if isinstance(exc, requests.exceptions.SSLError):
        # A certificate problem does not fix itself between retries.
        return Classification(False, Severity.HIGH, "upstream_tls")
    for kind, category, severity in _TRANSIENT_LIBRARY_ERRORS:
        if isinstance(exc, kind):
            return Classification(True, severity, category)
    for kind, category, severity in _PERMANENT_LIBRARY_ERRORS:
        if isinstance(exc, kind):
            return Classification(False, severity, category)
    return Classification(False, Severity.HIGH, "unexpected")
