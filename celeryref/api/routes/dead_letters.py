"""``/dead-letters``: list, show, replay and purge tasks that failed for good."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from celeryref.api.schemas import Accepted, DeadLetterDetail, DeadLetterSummary, Problem, Purged
from celeryref.api.security import Authenticated
from celeryref.celery_app import app as celery
from celeryref.errors import InvalidArguments
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.submission import submit as submission

router = APIRouter(prefix="/dead-letters", tags=["dead letters"], dependencies=[Authenticated])
EntryId = Annotated[int, Path(ge=1, le=2**62)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such entry"}
}


@router.get("", response_model=list[DeadLetterSummary])
def list_dead_letters(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    task: Annotated[str | None, Query(max_length=200)] = None,
) -> list[DeadLetterSummary]:
    """Newest first."""
    return [
        DeadLetterSummary.model_validate(e.summary())
        for e in dead_letters.list_entries(limit, task)
    ]


@router.get("/{entry_id}", response_model=DeadLetterDetail, responses=NOT_FOUND)
def show_dead_letter(entry_id: EntryId) -> DeadLetterDetail:
    entry = dead_letters.get(entry_id)
    return DeadLetterDetail.model_validate(
        {
            **entry.summary(),
            "args": entry.args,
            "kwargs": entry.kwargs,
            "traceback": entry.traceback,
        }
    )


@router.post(
    "/{entry_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "already replayed"}},
)
def replay_dead_letter(
    entry_id: EntryId, request: Request, force: Annotated[bool, Query()] = False
) -> Accepted:
    """Re-send the task with its arguments; once per entry unless ``force``."""
    entry = dead_letters.get(entry_id)
    try:
        task_id = dead_letters.replay(celery, entry_id, force=force)
    except InvalidArguments as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    submission.remember(task_id, entry.task_name)
    return Accepted(
        task_id=task_id, status_url=str(request.url_for("task_status", task_id=task_id))
    )


@router.delete("/{entry_id}", response_model=Purged, responses=NOT_FOUND)
def purge_dead_letter(entry_id: EntryId) -> Purged:
    dead_letters.get(entry_id)
    return Purged(purged=dead_letters.purge(entry_ids=[entry_id]))
