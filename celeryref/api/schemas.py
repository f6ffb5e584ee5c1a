"""Request and response models of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

TaskId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Problem(BaseModel):
    """Every 4xx answer: what is wrong."""

    detail: Any


class TaskSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Annotated[str, Field(max_length=100, description="public name, see GET /catalog")]
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments")
    priority: Annotated[int | None, Field(ge=0, le=9, description="0 is the highest")] = None
    idempotency_key: Annotated[str | None, Field(min_length=1, max_length=200)] = None


class Accepted(BaseModel):
    task_id: str
    status_url: str


class TaskError(BaseModel):
    type: str
    message: str


class TaskStatus(BaseModel):
    task_id: str
    task: str | None
    state: str
    progress: dict[str, Any] | None
    result: Any
    error: TaskError | None
    worker: str | None
    retries: int | None
    date_done: str | None


class Revoked(BaseModel):
    task_id: str
    revoked: bool
    terminate: bool


class CatalogEntry(BaseModel):
    name: str
    queue: str
    description: str
    args_schema: dict[str, Any]


class QueueDepths(BaseModel):
    queues: dict[str, int]


class WorkerInfo(BaseModel):
    name: str
    queues: list[str]
    active: int
    reserved: int
    pool: dict[str, Any]


class Workers(BaseModel):
    workers: list[WorkerInfo]


class DeadLetterSummary(BaseModel):
    id: int
    task_id: str
    task_name: str
    queue: str | None
    exception: str
    category: str
    retries: int
    failed_at: str
    replay_of: int | None
    replayed_at: str | None
    replay_task_id: str | None


class DeadLetterDetail(DeadLetterSummary):
    args: list[Any]
    kwargs: dict[str, Any]
    traceback: str | None


class Purged(BaseModel):
    purged: int


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]
