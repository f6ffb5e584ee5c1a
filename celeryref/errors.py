"""The exceptions tasks raise, how library errors map onto them, and what follows.

::

    TaskError                      base of every error this package raises on purpose
     +-- TransientError            may succeed later: retried with backoff (reliability.retry)
     |    +-- UpstreamUnavailable      a dependency timed out, refused, or answered 5xx
     |    +-- DatabaseUnavailable      Postgres connection lost / server restarting
     |    +-- CircuitOpen              the shared breaker refuses calls for ``retry_after`` s
     |    +-- DuplicateInProgress      another worker runs the same idempotency key now
     +-- PermanentError            fails the same way every time: never retried,
          |                        dead-lettered at once (celeryref.reliability.dead_letters.store)
          +-- BadRequestUpstream       a dependency answered 4xx to what we sent
          +-- InvalidArguments         the task was called with arguments it cannot use
          |    +-- EgressRefused           a URL the egress policy refuses (an internal
          |                                address or service: celeryref.adapters.egress)
          +-- NotFound                 the id asked about names nothing (task, dead letter,
                                       execution, job): 404 from the API (one handler in
                                       celeryref.api.main), non-zero exit from the CLIs;
                                       also a ``LookupError``

Library exceptions are not rewrapped where they are raised; :func:`classify` maps
any exception to a :class:`Classification` (retry or not, and a severity) at the
one place that decides: the task base class. Unknown exceptions (``ValueError``,
``KeyError`` from our own code: bugs) are permanent: retrying a bug only
multiplies it. Tasks reject bad input explicitly with :class:`InvalidArguments`.

An HTTP answer means the same everywhere (a task's request, ``raise_for_status``, the
alert webhook): :func:`is_transient_http_status` is the one rule, and
:func:`http_status_error` the error it makes.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass

import kombu.exceptions
import psycopg2
import redis
import requests
import urllib3
from celery.exceptions import BackendError, SoftTimeLimitExceeded, TimeLimitExceeded


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


class EgressRefused(InvalidArguments):
    """The egress policy refuses to connect to ``host``, for ``reason``
    (:mod:`celeryref.adapters.egress`)."""

    def __init__(self, host: str, reason: str) -> None:
        # args stay (host, reason) so the JSON result backend can rebuild it.
        super().__init__(host, reason)
        self.host = host
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"egress to {self.host!r} refused: {self.reason} "
            "(EGRESS_ALLOWED_HOSTS lists the hosts a deployment calls)"
        )


class NotFound(PermanentError, LookupError):
    """The id asked about names nothing: no such task, dead letter, execution or job.

    The one not-found error of the stores; the API maps it to 404 in one handler.
    """


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


_T, _P = True, False

#: The classification table, first match wins (so subclasses come before their bases).
RULES: tuple[tuple[type[BaseException], Classification], ...] = tuple(
    (kind, Classification(transient, severity, category))
    for kind, transient, severity, category in (
        # ours
        (CircuitOpen, _T, Severity.LOW, "circuit_open"),
        (DuplicateInProgress, _T, Severity.LOW, "duplicate_in_progress"),
        (UpstreamUnavailable, _T, Severity.MEDIUM, "upstream_unavailable"),
        (DatabaseUnavailable, _T, Severity.HIGH, "database_unavailable"),
        (TransientError, _T, Severity.MEDIUM, "transient"),
        (BadRequestUpstream, _P, Severity.MEDIUM, "upstream_bad_request"),
        (EgressRefused, _P, Severity.MEDIUM, "egress_refused"),
        (InvalidArguments, _P, Severity.MEDIUM, "invalid_arguments"),
        (NotFound, _P, Severity.MEDIUM, "not_found"),
        (PermanentError, _P, Severity.HIGH, "permanent"),
        # libraries (an HTTPError with a retryable status is handled before this table)
        (requests.exceptions.SSLError, _P, Severity.HIGH, "upstream_tls"),  # no self-healing
        (requests.exceptions.ChunkedEncodingError, _T, Severity.MEDIUM, "upstream_unavailable"),
        (requests.exceptions.ContentDecodingError, _T, Severity.MEDIUM, "upstream_unavailable"),
        (urllib3.exceptions.ProtocolError, _T, Severity.MEDIUM, "upstream_unavailable"),
        (urllib3.exceptions.ReadTimeoutError, _T, Severity.MEDIUM, "upstream_timeout"),
        (requests.ConnectionError, _T, Severity.MEDIUM, "upstream_unavailable"),
        (requests.Timeout, _T, Severity.MEDIUM, "upstream_timeout"),
        (requests.HTTPError, _P, Severity.MEDIUM, "upstream_http_error"),
        # Redis at its maxmemory refuses writes (noeviction, F19): it frees up as queues
        # drain and results expire, so later. (kombu wraps a refused publish in the
        # OperationalError below, also transient.)
        (redis.exceptions.OutOfMemoryError, _T, Severity.HIGH, "redis_out_of_memory"),
        (redis.ConnectionError, _T, Severity.HIGH, "redis_unavailable"),
        (redis.TimeoutError, _T, Severity.HIGH, "redis_unavailable"),
        # what a publish (a retry, a chained task) raises once kombu gave up on the broker
        (kombu.exceptions.OperationalError, _T, Severity.HIGH, "broker_unavailable"),
        # a result store/read that still could not reach Redis after RESULT_STORE_RETRIES
        (BackendError, _T, Severity.HIGH, "result_store_unavailable"),
        (psycopg2.OperationalError, _T, Severity.HIGH, "database_unavailable"),
        (psycopg2.InterfaceError, _T, Severity.HIGH, "database_unavailable"),
        (psycopg2.IntegrityError, _P, Severity.HIGH, "database_integrity"),
        (psycopg2.DataError, _P, Severity.MEDIUM, "database_data"),
        (psycopg2.ProgrammingError, _P, Severity.CRITICAL, "database_programming"),
        (SoftTimeLimitExceeded, _T, Severity.MEDIUM, "soft_time_limit"),
        (TimeLimitExceeded, _P, Severity.HIGH, "hard_time_limit"),
        (socket.timeout, _T, Severity.MEDIUM, "network_timeout"),
        (ConnectionError, _T, Severity.MEDIUM, "network_error"),
    )
)
#: What anything else is: a bug, and retrying a bug only multiplies it.
UNEXPECTED = Classification(False, Severity.HIGH, "unexpected")

#: HTTP statuses below 500 that mean "later", not "never": request timeout, rate limited.
RETRYABLE_HTTP_STATUSES = frozenset({408, 429})


def is_transient_http_status(status: int) -> bool:
    """Whether an HTTP answer that is not a success may succeed later.

    5xx (the server's trouble), 408 (request timeout) and 429 (rate limited): yes.
    Any other status (4xx; a 3xx where the caller does not follow redirects): no.
    """
    return status >= 500 or status in RETRYABLE_HTTP_STATUSES


def http_status_error(status: int, message: str) -> UpstreamUnavailable | BadRequestUpstream:
    """The error an unsuccessful HTTP answer ``status`` means (the caller decides which
    statuses are unsuccessful): :class:`UpstreamUnavailable` when
    :func:`is_transient_http_status`, else :class:`BadRequestUpstream`."""
    if is_transient_http_status(status):
        return UpstreamUnavailable(message)
    return BadRequestUpstream(message)


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_redis_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, Redis refusing a write at its maxmemory
    (``OOM command not allowed``; kombu re-raises it as an ``OperationalError``)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, redis.exceptions.OutOfMemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def classify(exc: BaseException) -> Classification:
    """Map ``exc`` to retry-or-not and a severity (:data:`RULES`, else :data:`UNEXPECTED`)."""
    if isinstance(exc, requests.HTTPError):
        status = _http_status(exc)
        if status is not None and is_transient_http_status(status):
            return Classification(True, Severity.MEDIUM, "upstream_unavailable")
    for kind, classification in RULES:
        if isinstance(exc, kind):
            return classification
    return UNEXPECTED
