"""``/jobs``: start a distributed map-reduce job over a dataset (202), poll its progress."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status

from celeryref.api.schemas import JobAccepted, JobStart, JobStatus, Problem
from celeryref.api.security import Authenticated
from celeryref.mapreduce import jobs

router = APIRouter(prefix="/jobs", tags=["map-reduce jobs"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    dependencies=[Authenticated],
    responses={422: {"model": Problem, "description": "unknown dataset/function, bad options"}},
)
def start_job(body: JobStart, request: Request) -> JobAccepted:
    """Plan partitions, queue the map tasks and the reducing chord; poll ``status_url``.

    With ``idempotency_key``, a repeat returns the first job (202, same body)."""
    job_id = jobs.start(
        body.dataset,
        body.function,
        body.options,
        partitions=body.partitions,
        partition_size=body.partition_size,
        client_key=body.idempotency_key,
    )
    url = str(request.url_for("job_status", job_id=job_id))
    return JobAccepted(job_id=job_id, status_url=url)


@router.get(
    "/{job_id}",
    response_model=JobStatus,
    dependencies=[Authenticated],
    responses={404: {"model": Problem, "description": "no such job"}},
)
def job_status(job_id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    """Status, progress (partitions done of total, percent) and, once done, the result."""
    return jobs.status(str(job_id))
