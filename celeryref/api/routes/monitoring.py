"""Health, readiness, metrics and the scaling signals (queue depths, worker stats).

``/healthz`` and ``/readyz`` are open (orchestrators and load balancers probe them) and
say only healthy or not: the reason a check failed (a driver's message names hosts and
users) goes to the log. Everything else here needs the token.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response, status
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from celeryref.adapters import db
from celeryref.api.schemas import Health, QueueDepths, Readiness, WorkerInfo, Workers
from celeryref.api.security import Authenticated
from celeryref.api.worker_snapshot import WorkerSnapshots
from celeryref.celery_app import app as celery
from celeryref.observability import queue_depth as monitoring
from celeryref.observability import task_stats

logger = logging.getLogger(__name__)
router = APIRouter(tags=["monitoring"])

_registry = CollectorRegistry()
_registry.register(task_stats.RedisTaskStatsCollector())

#: The workers as last asked by the one background thread (``GET /workers``).
snapshots = WorkerSnapshots(celery)


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the event loop answers (``async``: no request thread needed; a process
    whose request threads are all stuck is ended by :mod:`celeryref.api.watchdog`)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(response: Response) -> Readiness:
    """Readiness: the broker and the database answer (``ok`` or ``unavailable``)."""
    checks: dict[str, str] = {}
    try:
        monitoring.broker_client().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        logger.warning("readiness: redis unavailable: %s: %s", type(exc).__name__, exc)
        checks["redis"] = "unavailable"
    try:
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        logger.warning("readiness: postgres unavailable: %s: %s", type(exc).__name__, exc)
        checks["postgres"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(ready=ready, checks=checks)


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Authenticated])
def metrics() -> PlainTextResponse:
    """Prometheus metrics of every task in the cluster (outcomes, durations); scrape with
    ``Authorization: Bearer $API_TOKEN``."""
    return PlainTextResponse(generate_latest(_registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/queues", response_model=QueueDepths, dependencies=[Authenticated])
def queue_depths() -> QueueDepths:
    """Messages waiting per queue (all priorities): the signal to scale workers on."""
    return QueueDepths(queues=monitoring.queue_depths())


@router.get(
    "/workers",
    response_model=Workers,
    dependencies=[Authenticated],
    responses={503: {"description": "no worker snapshot could be taken (broker down)"}},
)
async def workers() -> Workers:
    """The workers that answered the latest snapshot (at most 10 s old, see ``age_seconds``):
    their queues, load and pool. Served from :mod:`celeryref.api.worker_snapshot`, never
    by a broadcast of this request."""
    snapshot = await snapshots.fresh()
    return Workers(
        workers=[WorkerInfo.model_validate(w) for w in snapshot.workers],
        age_seconds=round(snapshot.age, 3),
    )
