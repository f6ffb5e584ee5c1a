"""``/tasks``: submit a catalog task (202), poll its status, revoke it; ``/catalog``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status

from celeryref.api.schemas import (
    Accepted,
    CatalogEntry,
    Problem,
    Revoked,
    TaskId,
    TaskStatus,
    TaskSubmission,
)
from celeryref.api.security import Authenticated
from celeryref.celery_app import app as celery
from celeryref.submission import catalog
from celeryref.submission import submit as submission

router = APIRouter(tags=["tasks"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown task id"}
}


@router.get("/catalog", response_model=list[CatalogEntry])
def list_catalog() -> list[CatalogEntry]:
    """The tasks clients may submit, with the JSON schema of their arguments."""
    return [
        CatalogEntry(
            name=name,
            queue=entry.queue,
            description=entry.description,
            args_schema=entry.args_model.model_json_schema(),
        )
        for name, entry in sorted(catalog.CATALOG.items())
    ]


@router.post(
    "/tasks",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[Authenticated],
    responses={422: {"model": Problem, "description": "unknown task or invalid arguments"}},
)
def submit_task(body: TaskSubmission, request: Request, response: Response) -> Accepted:
    """Queue a task by its public name; poll ``status_url`` for progress and result.

    With ``idempotency_key``, at most one task per key: a repeat returns the first task
    id (202, same body), also while it runs; another request under the key is a 422."""
    result = submission.submit(
        celery, body.task, body.args, priority=body.priority, idempotency_key=body.idempotency_key
    )
    url = str(request.url_for("task_status", task_id=result.id))
    response.headers["Location"] = url
    return Accepted(task_id=result.id, status_url=url)


@router.get(
    "/tasks/{task_id}",
    response_model=TaskStatus,
    dependencies=[Authenticated],
    responses=NOT_FOUND,
)
def task_status(task_id: Annotated[TaskId, Path()]) -> TaskStatus:
    """State (PENDING, STARTED, PROGRESS, SUCCESS, FAILURE, ...), progress, result or error."""
    submission.require_known(task_id)
    return TaskStatus.model_validate(submission.status(celery, task_id))


@router.delete(
    "/tasks/{task_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Revoked,
    dependencies=[Authenticated],
    responses=NOT_FOUND,
)
def revoke_task(
    task_id: Annotated[TaskId, Path()],
    terminate: Annotated[bool, Query(description="also kill it if running")] = False,
) -> Revoked:
    """Revoke a task: it will not start; with ``terminate`` a running one is stopped."""
    submission.require_known(task_id)
    submission.revoke(celery, task_id, terminate=terminate)
    return Revoked(task_id=task_id, revoked=True, terminate=terminate)
