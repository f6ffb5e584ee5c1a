"""Request and response models of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

TaskId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
#: A client's idempotency key (F18): the same key again returns the first submission.
IdempotencyKey = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description="at most one submission per key: a repeat returns the first id",
    ),
]


class Problem(BaseModel):
    """Every 4xx answer: what is wrong."""

    detail: Any


class TaskSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Annotated[str, Field(max_length=100, description="public name, see GET /catalog")]
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments")
    priority: Annotated[int | None, Field(ge=0, le=9, description="0 is the highest")] = None
    idempotency_key: IdempotencyKey = None


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
    #: Seconds since the workers were asked (the snapshot's age).
    age_seconds: float


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


def storable_json(value: Any, depth: int = 0) -> Any:
    """``value`` if Postgres ``jsonb`` can store it: no NaN/Infinity, no NUL characters,
    at most 32 levels deep; else ``ValueError`` saying what is wrong."""
    if depth > 32:
        raise ValueError("nested more than 32 levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("strings must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            storable_json(key, depth + 1)
            storable_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            storable_json(item, depth + 1)
    return value


class WorkflowStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("definition", "input")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable_json(value)

    workflow: Annotated[str | None, Field(max_length=100, description="a registered name")] = None
    definition: dict[str, Any] | None = Field(
        default=None, description="an ad-hoc definition {name, steps: [...]} instead of a name"
    )
    input: Any = Field(default=None, description="the workflow's input (JSON)")
    idempotency_key: IdempotencyKey = None


class WorkflowAccepted(BaseModel):
    execution_id: str
    status_url: str


class WorkflowStep(BaseModel):
    name: str
    task: str
    queue: str
    depends_on: list[str]
    status: str
    task_id: str | None
    attempts: int
    result: Any
    error: str | None
    queued_at: str | None
    started_at: str | None
    finished_at: str | None


class WorkflowExecution(BaseModel):
    id: str
    workflow: str
    status: str
    input: Any
    result: Any
    error: str | None
    created_at: str
    finished_at: str | None
    steps: list[WorkflowStep]
    tree: str


class Cancelled(BaseModel):
    id: str
    cancelled: bool


class JobStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: Annotated[str, Field(min_length=1, max_length=200)]
    function: Annotated[
        str, Field(max_length=50, description="validation, transformation, analysis, aggregation")
    ]
    options: dict[str, Any] = Field(default_factory=dict)
    partitions: Annotated[int | None, Field(ge=1, le=1000)] = None
    partition_size: Annotated[int | None, Field(ge=1, le=10_000_000)] = None
    idempotency_key: IdempotencyKey = None

    @field_validator("options")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable_json(value)


class JobAccepted(BaseModel):
    job_id: str
    status_url: str


class JobStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    job_id: str
    dataset: str
    function: str
    status: str
    partitions_done: int
    partitions_total: int
    percent: float
    error: str | None
    result: Any
