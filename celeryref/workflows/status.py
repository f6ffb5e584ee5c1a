"""Status of an execution and its steps, read from Postgres, and its text tree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from celeryref.adapters import db
from celeryref.errors import NotFound
from celeryref.workflows.definition import Step, layers


@dataclass(frozen=True)
class StepState:
    """One row of ``workflow_steps``."""

    name: str
    task: str
    queue: str
    depends_on: tuple[str, ...]
    status: str
    task_id: str | None
    attempts: int
    result: Any
    error: str | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class ExecutionState:
    """One row of ``workflow_executions`` and its steps in definition order."""

    id: str
    workflow: str
    status: str
    input: Any
    result: Any
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    steps: tuple[StepState, ...]

    def step(self, name: str) -> StepState:
        return next(s for s in self.steps if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (timestamps as ISO-8601)."""

        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        data = asdict(self)
        data["steps"] = [{k: plain(v) for k, v in s.items()} for s in data["steps"]]
        return {k: plain(v) for k, v in data.items()}


def load(execution_id: str) -> ExecutionState:
    """The execution ``execution_id``; :class:`~celeryref.errors.NotFound` when there is none."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id::text, workflow, status, input, result, error, created_at, finished_at"
            " FROM workflow_executions WHERE id = %s",
            (execution_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no workflow execution {execution_id}")
        cur.execute(
            "SELECT name, task, queue, depends_on, status, task_id, attempts, result, error,"
            " queued_at, started_at, finished_at FROM workflow_steps"
            " WHERE execution_id = %s ORDER BY position",
            (execution_id,),
        )
        steps = tuple(StepState(r[0], r[1], r[2], tuple(r[3]), *r[4:]) for r in cur.fetchall())
    keys = ("id", "workflow", "status", "input", "result", "error", "created_at", "finished_at")
    return ExecutionState(**dict(zip(keys, row, strict=True)), steps=steps)


def _duration(step: StepState) -> str:
    if step.started_at is None:
        return ""
    if step.finished_at is None:
        return "  (running)"
    return f"  {(step.finished_at - step.started_at).total_seconds():.2f}s"


def render_tree(execution: ExecutionState) -> str:
    """The execution as text: one line per step, indented by graph depth."""
    lines = [f"{execution.workflow} {execution.id}: {execution.status}"]
    if execution.error:
        lines.append(f"  error: {execution.error}")
    graph = [Step(s.name, s.task, s.depends_on) for s in execution.steps]
    by_name = {s.name: s for s in execution.steps}
    for depth, names in enumerate(layers(graph)):
        for name in names:
            step = by_name[name]
            after = f" <- {', '.join(step.depends_on)}" if step.depends_on else ""
            tries = f"  attempts={step.attempts}" if step.attempts > 1 else ""
            lines.append(
                f"{'  ' * (depth + 1)}{'└─ ' if depth else '● '}{name} [{step.status}]"
                f" {step.task}@{step.queue}{after}{_duration(step)}{tries}"
            )
            if step.error and step.status != "succeeded":
                lines.append(f"{'  ' * (depth + 2)}   {step.error}")
    return "\n".join(lines)
