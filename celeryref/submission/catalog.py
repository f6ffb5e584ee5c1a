"""The public task catalog: what clients may submit, by name, with typed arguments.

Clients (HTTP API, CLI) never name a Celery task directly: they pick a public name
from this allowlist and pass arguments that its pydantic model validates before
anything is sent to the broker. A name that is not here, or arguments that do not
fit, are refused with a message saying what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from celeryref import queues
from celeryref.adapters.egress import EgressPolicy
from celeryref.errors import EgressRefused, InvalidArguments

Finite = Annotated[float, Field(allow_inf_nan=False)]


def _egress_allowed(url: str) -> str:
    """Refuse at submission what the egress policy refuses from the URL alone (a service
    name, an internal IP literal): 422 now rather than a dead letter later. Names are
    resolved and checked by the worker when it connects."""
    try:
        EgressPolicy.from_settings().check_url(url)
    except EgressRefused as exc:
        raise ValueError(str(exc)) from None
    return url


#: An http(s) URL a task may fetch.
Url = Annotated[str, Field(pattern=r"^https?://", max_length=2048), AfterValidator(_egress_allowed)]


class Args(BaseModel):
    """Base of every argument model: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class NoArgs(Args):
    pass


class AddArgs(Args):
    x: Finite
    y: Finite


class SummarizeArgs(Args):
    numbers: Annotated[list[Finite], Field(min_length=1, max_length=10_000)]


#: Upper bound of ``n * work`` hash rounds a client may ask for (~10-30 s of a core).
MAX_LONG_TASK_ROUNDS = 20_000_000


class LongTaskArgs(Args):
    n: Annotated[int, Field(ge=1, le=10_000, description="steps")]
    work: Annotated[int, Field(ge=0, le=1_000_000, description="hash rounds per step")] = 20_000

    @model_validator(mode="after")
    def bounded(self) -> LongTaskArgs:
        if self.n * self.work > MAX_LONG_TASK_ROUNDS:
            raise ValueError(f"n * work must be at most {MAX_LONG_TASK_ROUNDS}")
        return self


class FetchUrlArgs(Args):
    url: Url


class CallApiArgs(Args):
    method: Annotated[str, Field(pattern=r"^(GET|POST|PUT|PATCH|DELETE|HEAD)$")] = "GET"
    url: Url
    json_body: Any = Field(default=None, alias="json")


class DbOperationArgs(Args):
    operation: Annotated[str, Field(max_length=100)]
    params: dict[str, int | float | str] = {}


@dataclass(frozen=True)
class Entry:
    """One submittable task."""

    task_name: str
    queue: str
    args_model: type[Args]
    description: str


T = queues.TASK_PACKAGE

#: public name -> catalog entry
CATALOG: dict[str, Entry] = {
    "add": Entry(f"{T}.default.add", queues.DEFAULT, AddArgs, "x + y"),
    "multiply": Entry(f"{T}.default.multiply", queues.DEFAULT, AddArgs, "x * y"),
    "summarize": Entry(
        f"{T}.default.summarize", queues.DEFAULT, SummarizeArgs, "count, sum, mean, min, max"
    ),
    "long_task": Entry(
        f"{T}.cpu_intensive.long_task",
        queues.CPU_INTENSIVE,
        LongTaskArgs,
        "n steps of CPU work, reporting PROGRESS",
    ),
    "fetch_url": Entry(
        f"{T}.io_intensive.fetch_url",
        queues.IO_INTENSIVE,
        FetchUrlArgs,
        "GET a URL with retries on transient errors",
    ),
    "call_api": Entry(
        f"{T}.io_intensive.call_api",
        queues.IO_INTENSIVE,
        CallApiArgs,
        "one resilient HTTP call (5xx retried, 4xx not)",
    ),
    "cleanup_sessions": Entry(
        f"{T}.scheduled.cleanup_expired_sessions",
        queues.SCHEDULED,
        NoArgs,
        "delete expired sessions (also run hourly by beat)",
    ),
    "health_check": Entry(
        f"{T}.priority.health_check", queues.PRIORITY, NoArgs, "probe Redis and Postgres"
    ),
    "db_operation": Entry(
        f"{T}.default.resilient_db_operation",
        queues.DEFAULT,
        DbOperationArgs,
        "an allowlisted, named database operation",
    ),
}


def lookup(public_name: str) -> Entry:
    """The catalog entry of ``public_name``, or :class:`InvalidArguments` naming the choices."""
    try:
        return CATALOG[public_name]
    except KeyError:
        raise InvalidArguments(
            f"unknown task {public_name!r}; submittable tasks: {sorted(CATALOG)}"
        ) from None


def validate_args(entry: Entry, raw: Any) -> dict[str, Any]:
    """Validated keyword arguments for ``entry``; :class:`InvalidArguments` says what is wrong."""
    if not isinstance(raw, dict):
        raise InvalidArguments("args must be a JSON object of keyword arguments")
    try:
        model = entry.args_model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'args'}: {err['msg']}"
            for err in exc.errors()
        )
        name = entry.task_name.rsplit(".", 1)[1]
        raise InvalidArguments(f"invalid args for {name}: {problems}") from None
    return model.model_dump(by_alias=True, exclude_unset=False)
