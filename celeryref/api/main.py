"""The ``app`` service's HTTP API: health, readiness, metrics and the queue-depth signal.

Served by uvicorn (``uvicorn celeryref.api.main:api``). Task submission and status
endpoints build on this module.
"""

from __future__ import annotations

from typing import Any

import redis
from fastapi import FastAPI, Response, status
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from celeryref import db, monitoring, task_stats

api = FastAPI(title="Celery reference deployment", version="0.1.0")


@api.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@api.get("/readyz", tags=["health"])
def readyz(response: Response) -> dict[str, Any]:
    """Readiness: the broker and the database answer."""
    checks: dict[str, str] = {}
    try:
        monitoring.broker_client().ping()
        checks["redis"] = "ok"
    except redis.RedisError as exc:
        checks["redis"] = f"error: {exc}"
    try:
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {exc}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"ready": ready, "checks": checks}


_registry = CollectorRegistry()
_registry.register(task_stats.RedisTaskStatsCollector())


@api.get("/metrics", tags=["monitoring"], response_class=PlainTextResponse)
def metrics() -> PlainTextResponse:
    """Prometheus metrics of every task in the cluster (outcomes, durations)."""
    return PlainTextResponse(generate_latest(_registry), media_type=CONTENT_TYPE_LATEST)


@api.get("/queues", tags=["monitoring"])
def queue_depths() -> dict[str, dict[str, int]]:
    """Messages waiting per queue (all priorities): the signal to scale workers on."""
    return {"queues": monitoring.queue_depths()}
