"""The ``app`` service's HTTP API (``uvicorn --factory celeryref.api.main:api_with_logging``).

Submit catalog tasks (``202`` + status URL), poll status and progress, revoke;
operate the dead-letter store; read queue depths, worker stats and metrics.
Mutating and sensitive endpoints need ``Authorization: Bearer $API_TOKEN``. Bad
input is always a 4xx with a ``detail`` saying what is wrong, never a 5xx.
"""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from celeryref.api.limits import BodySizeLimit
from celeryref.api.routes import dead_letters, jobs, monitoring, tasks, workflows
from celeryref.errors import InvalidArguments, NotFound, is_redis_out_of_memory
from celeryref.observability import logs
from celeryref.settings import settings

logger = logging.getLogger(__name__)

#: Seconds a client is asked to wait (``Retry-After``) when Redis is unavailable.
RETRY_AFTER_SECONDS = 10

api = FastAPI(
    title="Celery reference deployment",
    version="0.2.0",
    description=__doc__,
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
    the format is decided in one place.
    """
    logs.configure()
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

    Nothing was accepted, so the client keeps the request and sends it again.
    """
    problem = (
        "the broker (Redis) is full (maxmemory reached)"
        if is_redis_out_of_memory(exc)
        else "the broker (Redis) is unavailable"
    )
    logger.warning("answering 503, %s: %s: %s", problem, type(exc).__name__, exc)
    detail = f"{problem}; nothing was accepted, retry later ({type(exc).__name__}: {exc})"
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
