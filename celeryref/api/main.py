"""The ``app`` service's HTTP API (``uvicorn --factory celeryref.api.main:api_with_logging``).

Submit catalog tasks (``202`` + status URL), poll status and progress, revoke;
operate the dead-letter store; read queue depths, worker stats and metrics.
Every endpoint but ``/healthz``, ``/readyz`` and the catalogs needs
``Authorization: Bearer $API_TOKEN``. Bad input is always a 4xx with a ``detail``
saying what is wrong, never a 5xx; a dependency that cannot answer now (Redis,
Postgres, a pool that stays full) is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
import kombu.exceptions
import psycopg2
import redis
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from celeryref.api.broadcasts import one_resource_per_broadcast
from celeryref.api.limits import BodySizeLimit
from celeryref.api.routes import dead_letters, jobs, monitoring, tasks, workflows
from celeryref.api.watchdog import Watchdog
from celeryref.api.worker_snapshot import SnapshotUnavailable
from celeryref.celery_app import app as celery
from celeryref.errors import DatabaseUnavailable, InvalidArguments, NotFound, is_redis_out_of_memory
from celeryref.observability import logs
from celeryref.settings import settings

logger = logging.getLogger(__name__)

#: Seconds a client is asked to wait (``Retry-After``) when Redis is unavailable.
RETRY_AFTER_SECONDS = 10
#: Seconds a client is asked to wait when Postgres is unavailable or the pool stays full.
DB_RETRY_AFTER_SECONDS = 2


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """While serving: ``API_THREADS`` request threads; broadcasts take one pooled broker
    connection each (:mod:`celeryref.api.broadcasts`); the watchdog runs when
    :func:`api_with_logging` (the ``app`` service) asked for it; the worker-snapshot
    thread stops at the end."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
    one_resource_per_broadcast(celery)
    seconds: float = getattr(app.state, "watchdog_seconds", 0.0)
    async with contextlib.AsyncExitStack() as stack:
        if seconds > 0:
            await stack.enter_async_context(Watchdog(seconds).running())
        try:
            yield
        finally:
            monitoring.snapshots.stop()


api = FastAPI(
    title="Celery reference deployment",
    version="0.2.0",
    description=__doc__,
    lifespan=lifespan,
)
api.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
api.include_router(monitoring.router)
api.include_router(tasks.router)
api.include_router(workflows.router)
api.include_router(jobs.router)
api.include_router(dead_letters.router)


def api_with_logging() -> FastAPI:
    """:data:`api` with the process's logging configured: the ``app`` service runs
    ``uvicorn --factory celeryref.api.main:api_with_logging``.

    uvicorn calls the factory (in each of its processes) after its own log config and
    before its first line ("Started server process"); :func:`logs.configure` then takes
    over uvicorn's loggers, so server, access and application lines share one format
    (JSON in the container). A factory rather than configuring at import, so importing
    :data:`api` (tests, tools) leaves logging alone; rather than ``--log-config``, so
    the format is decided in one place. It also turns the watchdog on
    (``API_WATCHDOG_SECONDS``, :mod:`celeryref.api.watchdog`): the serving process exits
    when it stops serving; tests that import :data:`api` get no watchdog.
    """
    logs.configure()
    api.state.watchdog_seconds = settings.api_watchdog_seconds
    return api


@api.exception_handler(RequestValidationError)
async def request_validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 listing where and what; the offending input is not echoed back (it may not
    even be encodable: NaN, Infinity)."""
    problems = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": problems}
    )


@api.exception_handler(InvalidArguments)
async def invalid_arguments(request: Request, exc: InvalidArguments) -> JSONResponse:
    """Unknown task, wrong arguments, bad idempotency key: 422 with the reason."""
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": str(exc)}
    )


@api.exception_handler(NotFound)
async def not_found(request: Request, exc: NotFound) -> JSONResponse:
    """The one 404: no such task, dead letter, workflow execution or map-reduce job.

    Routes do not catch :class:`~celeryref.errors.NotFound`; the store says what is missing.
    """
    return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(exc)})


def broker_unavailable(exc: BaseException) -> JSONResponse:
    """503 + ``Retry-After``: Redis (broker, results, state) cannot be reached now, or
    refuses writes at its maxmemory (F19: ``OOM command not allowed``, a ``ResponseError``
    that kombu re-raises as an ``OperationalError``; both handlers below catch it).

    The client keeps the request and sends it again. Nothing was accepted, with one
    exception the API cannot tell apart: Redis took a task's message but its reply was
    lost (F25). A resend under the same ``idempotency_key`` then runs it at most once.
    """
    problem = (
        "the broker (Redis) is full (maxmemory reached)"
        if is_redis_out_of_memory(exc)
        else "the broker (Redis) is unavailable"
    )
    logger.warning("answering 503, %s: %s: %s", problem, type(exc).__name__, exc)
    detail = (
        f"{problem}; not accepted, retry later (a resend under the same idempotency_key"
        f" runs at most once) ({type(exc).__name__}: {exc})"
    )
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        content={"detail": detail[:500]},
    )


@api.exception_handler(kombu.exceptions.OperationalError)
async def kombu_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A publish that could not reach the broker (kombu gave up after its retries)."""
    return broker_unavailable(exc)


@api.exception_handler(redis.RedisError)
async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A read or write of results or state that could not reach Redis."""
    return broker_unavailable(exc)


@api.exception_handler(RuntimeError)
async def result_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Celery's Redis result consumer gives up with a bare ``RuntimeError`` ("Retry limit
    exceeded while trying to reconnect to the Celery result store backend"); any other
    ``RuntimeError`` is a bug and stays a 500."""
    if "result store" not in str(exc):
        raise exc
    return broker_unavailable(exc)


def unavailable(problem: str, retry_after: int) -> JSONResponse:
    """503 + ``Retry-After``: nothing was done, the client sends the request again."""
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(retry_after)},
        content={"detail": f"{problem}; retry later"},
    )


@api.exception_handler(DatabaseUnavailable)
@api.exception_handler(psycopg2.OperationalError)
async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Postgres cannot be reached, or every pooled connection stayed busy for
    ``DB_POOL_TIMEOUT`` (:class:`celeryref.adapters.db.WaitingPool`). The driver's message
    (host, user) is logged, not sent."""
    logger.warning("answering 503, database: %s: %s", type(exc).__name__, exc)
    busy = isinstance(exc, DatabaseUnavailable)
    problem = "the database is busy" if busy else "the database (Postgres) is unavailable"
    return unavailable(problem, DB_RETRY_AFTER_SECONDS)


@api.exception_handler(SnapshotUnavailable)
async def workers_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """No worker snapshot could be taken within its wait (the broker is unreachable)."""
    logger.warning("answering 503, workers: %s", exc)
    return unavailable("the workers could not be asked (broker unreachable?)", RETRY_AFTER_SECONDS)
