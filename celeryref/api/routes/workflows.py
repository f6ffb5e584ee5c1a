"""``/workflows``: start a DAG workflow (202), read its status tree, cancel it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status

from celeryref.api.schemas import (
    Cancelled,
    Problem,
    WorkflowAccepted,
    WorkflowExecution,
    WorkflowStart,
)
from celeryref.api.security import Authenticated
from celeryref.errors import InvalidArguments
from celeryref.workflows import engine, registry
from celeryref.workflows import status as wf_status
from celeryref.workflows.definition import Workflow, validate

router = APIRouter(prefix="/workflows", tags=["workflows"])
ExecutionId = Annotated[uuid.UUID, Path(description="execution id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such execution"}
}


@router.get("", response_model=list[str])
def list_workflows() -> list[str]:
    """Names of the registered workflows."""
    return registry.names()


def _workflow(body: WorkflowStart) -> Workflow:
    if (body.workflow is None) == (body.definition is None):
        raise InvalidArguments("give exactly one of 'workflow' (a name) or 'definition'")
    if body.workflow is not None:
        return registry.get(body.workflow)
    try:
        return validate(Workflow.from_dict(body.definition or {}), registry.STEP_TASKS)
    except (TypeError, ValueError, AttributeError) as exc:
        # Wrong types inside a step (e.g. "retries": "three") are the client's error.
        raise InvalidArguments(f"invalid workflow definition: {exc}") from None


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WorkflowAccepted,
    dependencies=[Authenticated],
    responses={422: {"model": Problem, "description": "unknown workflow or invalid definition"}},
)
def start_workflow(body: WorkflowStart, request: Request) -> WorkflowAccepted:
    """Start a registered workflow by name, or an ad-hoc definition; poll ``status_url``.

    With ``idempotency_key``, a repeat returns the first execution (202, same body)."""
    execution_id = engine.start(_workflow(body), body.input, client_key=body.idempotency_key)
    url = str(request.url_for("workflow_status", execution_id=execution_id))
    return WorkflowAccepted(execution_id=execution_id, status_url=url)


@router.get(
    "/{execution_id}",
    response_model=WorkflowExecution,
    dependencies=[Authenticated],
    responses=NOT_FOUND,
)
def workflow_status(execution_id: ExecutionId) -> WorkflowExecution:
    """The execution and every step: status, attempts, timestamps, result or error."""
    execution = wf_status.load(str(execution_id))
    return WorkflowExecution.model_validate(
        {**execution.to_dict(), "tree": wf_status.render_tree(execution)}
    )


@router.post(
    "/{execution_id}/cancel",
    response_model=Cancelled,
    dependencies=[Authenticated],
    responses=NOT_FOUND,
)
def cancel_workflow(execution_id: ExecutionId) -> Cancelled:
    """Cancel a running execution (``cancelled: false`` when it had already finished)."""
    return Cancelled(id=str(execution_id), cancelled=engine.cancel(str(execution_id)))
