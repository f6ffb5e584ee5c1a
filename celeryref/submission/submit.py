"""Submitting catalog tasks and reading their status: shared by the HTTP API and the CLI.

Every id handed out is remembered in Redis for as long as results live
(``RESULT_EXPIRES``), so a status query can tell "unknown id" (404) from
"queued, not started yet" — Celery itself reports both as ``PENDING``. The id is
remembered *before* the message is sent (F17): a send that fails leaves at most a
remembered id nobody was given, never a running task the API called "not accepted".

With a client ``idempotency_key`` (F18, :mod:`celeryref.submission.client_keys`) the
key's row is inserted, the message sent, and only then the row committed: a send that
fails rolls the key back (503), and a second post with the key returns the first task
id. A send that failed after Redis took the message (its reply lost, F25) leaves that
message queued although the key was rolled back; the message carries the key, and the
worker claims it (:meth:`celeryref.reliability.task_base.BaseTask._run_once`), so the
client's resend under the key and the message the API could not confirm run once.
Sending inside the transaction, rather than committing an outbox row first, is right
here because a catalog task reads nothing the transaction writes (a workflow step
does: see :func:`celeryref.workflows.engine.start`), and because it never needs a
republish, which would run a non-idempotent task twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from celeryref.adapters import db, redis_state
from celeryref.errors import NotFound
from celeryref.observability.progress import PROGRESS
from celeryref.reliability.idempotency import HEADER as IDEMPOTENCY_HEADER
from celeryref.reliability.idempotency import validate_key
from celeryref.settings import settings
from celeryref.submission import catalog, client_keys

logger = logging.getLogger(__name__)


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
    """Validate and send one catalog task; raise ``InvalidArguments`` on bad input.

    With ``idempotency_key``: at most one task per key; a repeat gets the first task's
    result handle (see the module docstring)."""
    entry = catalog.lookup(public_name)
    kwargs = catalog.validate_args(entry, args)
    task_id = str(uuid.uuid4())
    if idempotency_key is None:
        _send(app, entry, kwargs, task_id, priority, public_name, {})
        return app.AsyncResult(task_id)
    headers = {IDEMPOTENCY_HEADER: validate_key(idempotency_key)}
    printed = client_keys.fingerprint("task", [public_name, kwargs, priority])
    with db.connection() as conn, conn.cursor() as cur:
        first = client_keys.claim(cur, idempotency_key, "task", task_id, printed)
        if first is not None:
            logger.info("idempotency key %r: task %s submitted already", idempotency_key, first)
            return app.AsyncResult(first)
        _send(app, entry, kwargs, task_id, priority, public_name, headers)
    return app.AsyncResult(task_id)


def _send(
    app: Celery,
    entry: catalog.Entry,
    kwargs: dict[str, Any],
    task_id: str,
    priority: int | None,
    public_name: str,
    headers: dict[str, str],
) -> None:
    """Remember ``task_id``, then send it; a failed send forgets it again (best effort)."""
    remember(task_id, public_name)
    try:
        app.send_task(
            entry.task_name,
            kwargs=kwargs,
            task_id=task_id,
            queue=entry.queue,
            priority=priority,
            headers=headers,
        )
    except Exception:
        try:
            redis_state.client().delete(_submitted_key(task_id))
        except Exception as exc:  # Redis is down: the id stays PENDING, and nobody has it
            logger.info("could not forget unsent task %s: %s", task_id, exc)
        raise


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
