"""The ``app`` service's HTTP API (``uvicorn celeryref.api.main:api``).

Submit catalog tasks (``202`` + status URL), poll status and progress, revoke;
operate the dead-letter store; read queue depths, worker stats and metrics.
Mutating and sensitive endpoints need ``Authorization: Bearer $API_TOKEN``. Bad
input is always a 4xx with a ``detail`` saying what is wrong, never a 5xx.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from celeryref.api.limits import BodySizeLimit
from celeryref.api.routes import dead_letters, jobs, monitoring, tasks, workflows
from celeryref.errors import InvalidArguments
from celeryref.settings import settings

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
