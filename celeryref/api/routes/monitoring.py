"""Health, readiness, metrics and the scaling signals (queue depths, worker stats)."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter, Response, status
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from celeryref.adapters import db
from celeryref.api.schemas import Health, QueueDepths, Readiness, WorkerInfo, Workers
from celeryref.celery_app import app as celery
from celeryref.observability import queue_depth as monitoring
from celeryref.observability import task_stats

router = APIRouter(tags=["monitoring"])

_registry = CollectorRegistry()
_registry.register(task_stats.RedisTaskStatsCollector())

#: Seconds to wait for workers to answer an inspect broadcast.
INSPECT_TIMEOUT = 1.0


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process serves requests."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(response: Response) -> Readiness:
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
    return Readiness(ready=ready, checks=checks)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics() -> PlainTextResponse:
    """Prometheus metrics of every task in the cluster (outcomes, durations)."""
    return PlainTextResponse(generate_latest(_registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/queues", response_model=QueueDepths)
def queue_depths() -> QueueDepths:
    """Messages waiting per queue (all priorities): the signal to scale workers on."""
    return QueueDepths(queues=monitoring.queue_depths())


@router.get("/workers", response_model=Workers)
def workers() -> Workers:
    """Every worker that answers within a second: its queues, load and pool."""
    inspect = celery.control.inspect(timeout=INSPECT_TIMEOUT)
    queues: dict[str, Any] = inspect.active_queues() or {}
    active: dict[str, Any] = inspect.active() or {}
    reserved: dict[str, Any] = inspect.reserved() or {}
    stats: dict[str, Any] = inspect.stats() or {}
    return Workers(
        workers=[
            WorkerInfo(
                name=name,
                queues=sorted(q["name"] for q in queues.get(name, [])),
                active=len(active.get(name, [])),
                reserved=len(reserved.get(name, [])),
                pool={
                    k: v
                    for k, v in stats.get(name, {}).get("pool", {}).items()
                    if k in ("implementation", "max-concurrency", "processes")
                },
            )
            for name in sorted(set(queues) | set(stats))
        ]
    )
