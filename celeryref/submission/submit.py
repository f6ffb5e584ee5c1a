"""Submitting catalog tasks and reading their status: shared by the HTTP API and the CLI.

Every id handed out is remembered in Redis for as long as results live
(``RESULT_EXPIRES``), so a status query can tell "unknown id" (404) from
"queued, not started yet" — Celery itself reports both as ``PENDING``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.result import AsyncResult

from celeryref.adapters import redis_state
from celeryref.errors import NotFound
from celeryref.observability.progress import PROGRESS
from celeryref.reliability.idempotency import HEADER as IDEMPOTENCY_HEADER
from celeryref.reliability.idempotency import validate_key
from celeryref.settings import settings
from celeryref.submission import catalog


def _submitted_key(task_id: str) -> str:
    return redis_state.key("submitted", task_id)


def submit(
    app: Celery,
    public_name: str,
    args: Any,
    *,
    priority: int | None = None,
    idempotency_key: str | None = None,
) -> AsyncResult:
    """Validate and send one catalog task; raise ``InvalidArguments`` on bad input."""
    entry = catalog.lookup(public_name)
    kwargs = catalog.validate_args(entry, args)
    headers = {IDEMPOTENCY_HEADER: validate_key(idempotency_key)} if idempotency_key else {}
    result = app.send_task(
        entry.task_name, kwargs=kwargs, queue=entry.queue, priority=priority, headers=headers
    )
    remember(result.id, public_name)
    return result


def remember(task_id: str, name: str) -> None:
    """Make ``task_id`` known to :func:`status` queries (for as long as results live)."""
    redis_state.client().set(_submitted_key(task_id), name, ex=settings.result_expires)


def require_known(task_id: str) -> None:
    """Raise :class:`~celeryref.errors.NotFound` unless ``task_id`` was handed out by
    :func:`submit` or :func:`remember` (and has not expired)."""
    if not redis_state.client().exists(_submitted_key(task_id)):
        raise NotFound(f"no task {task_id!r} was submitted here")


def describe_error(exc: Any) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def status(app: Celery, task_id: str) -> dict[str, Any]:
    """State, progress, result or error of a task, from one backend read."""
    meta = app.backend.get_task_meta(task_id)
    state = str(meta.get("status"))
    info = meta.get("result")
    body: dict[str, Any] = {
        "task_id": task_id,
        "task": redis_state.client().get(_submitted_key(task_id)),
        "state": state,
        "progress": None,
        "result": None,
        "error": None,
        "worker": meta.get("worker"),
        "retries": meta.get("retries"),
        "date_done": str(meta["date_done"]) if meta.get("date_done") else None,
    }
    if isinstance(body["task"], bytes):
        body["task"] = body["task"].decode()
    if state == PROGRESS and isinstance(info, dict):
        body["progress"] = info
    elif state == "SUCCESS":
        body["result"] = info
    elif state in ("FAILURE", "REVOKED", "REJECTED") or isinstance(info, BaseException):
        body["error"] = describe_error(info)
    return body


def revoke(app: Celery, task_id: str, *, terminate: bool = False) -> None:
    """Revoke a task: it will not start; with ``terminate`` a running one is killed."""
    app.control.revoke(task_id, terminate=terminate, signal="SIGTERM")
