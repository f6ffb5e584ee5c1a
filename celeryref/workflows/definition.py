"""Workflow definitions: named steps with dependencies, checked before anything runs.

A :class:`Workflow` is a list of :class:`Step`; :func:`validate` refuses a
definition whose steps repeat a name, depend on a step that does not exist, form
a cycle, name a task outside the allowlist or a queue that does not exist, and
says which ones. :func:`layers` orders the steps for display and tests: every
step of a layer depends only on steps of earlier layers, so the steps of one
layer can run in parallel.

Pure: no broker, no database.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from celeryref import queues
from celeryref.errors import InvalidArguments
from celeryref.settings import VISIBILITY_MARGIN_SECONDS, settings

#: Step names: lower-case identifiers (they appear in SQL rows, logs and the CLI).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Most steps one workflow may have.
MAX_STEPS = 100
#: Most retries of one step (after its first attempt).
MAX_RETRIES = 10
#: Longest step timeout (seconds) at any visibility timeout; see :func:`max_timeout`.
MAX_TIMEOUT = 3_000.0
#: Seconds between a step's soft timeout and the hard kill of its process.
HARD_LIMIT_GRACE = 30.0


def max_timeout() -> float:
    """Longest step timeout (seconds) this deployment can run without a redelivery.

    A step's hard limit is its timeout + :data:`HARD_LIMIT_GRACE`; with the margin of
    :func:`~celeryref.reliability.delivery_guard.max_delay` it must end before
    ``BROKER_VISIBILITY_TIMEOUT`` (F23), or Redis hands the running step to a second
    worker. Longer timeouts are refused when the definition is checked, not routed
    elsewhere: no queue of a Redis broker can hold a task longer. (A step's retry
    backoff needs no room here: a delay that does not fit goes to the durable scheduler.)
    """
    room = settings.broker_visibility_timeout - VISIBILITY_MARGIN_SECONDS - HARD_LIMIT_GRACE
    return min(MAX_TIMEOUT, room - 1)  # the bound is strict


class WorkflowDefinitionError(InvalidArguments):
    """The definition cannot run; the message names every problem found."""


@dataclass(frozen=True)
class Step:
    """One node of the graph."""

    name: str
    #: Allowlisted public name of the step task (see :mod:`celeryref.workflows.registry`).
    task: str
    #: Names of the steps whose results this step needs; it starts after all succeeded.
    depends_on: tuple[str, ...] = ()
    #: Queue to run on; ``None``: the task's own queue (its module's).
    queue: str | None = None
    #: Retries of transient failures after the first attempt.
    retries: int = 3
    #: Seconds of the first retry backoff (doubling, jittered, capped at 60 s).
    retry_delay: float = 1.0
    #: Seconds before ``SoftTimeLimitExceeded`` in the step (hard limit 30 s later);
    #: ``None``: the deployment's task time limits.
    timeout: float | None = None
    #: Static JSON arguments of this step.
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Step:
        known = {"name", "task", "depends_on", "queue", "retries", "retry_delay", "timeout"}
        unknown = set(raw) - known - {"params"}
        if unknown:
            raise WorkflowDefinitionError(f"step has unknown fields: {sorted(unknown)}")
        fields = {k: v for k, v in raw.items() if k in known}
        fields["depends_on"] = tuple(raw.get("depends_on") or ())
        return cls(**fields, params=dict(raw.get("params") or {}))


@dataclass(frozen=True)
class Workflow:
    """A named graph of steps, in definition order."""

    name: str
    steps: tuple[Step, ...]
    description: str = ""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Workflow:
        """Parse ``{"name", "steps": [...], "description"?}`` (e.g. from JSON)."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("steps"), list):
            raise WorkflowDefinitionError("a workflow is an object with a list 'steps'")
        steps = tuple(Step.from_dict(s) for s in raw["steps"] if isinstance(s, Mapping))
        if len(steps) != len(raw["steps"]):
            raise WorkflowDefinitionError("every step must be an object")
        return cls(str(raw.get("name", "")), steps, str(raw.get("description", "")))


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the graph ``step -> its dependencies`` as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in edges.get(node, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep in edges and dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _step_problems(step: Step, allowed_tasks: Collection[str]) -> list[str]:
    problems = []
    if not isinstance(step.name, str) or not NAME_PATTERN.match(step.name):
        problems.append(f"step name {step.name!r} must match {NAME_PATTERN.pattern}")
    if step.task not in allowed_tasks:
        problems.append(f"step {step.name!r}: unknown task {step.task!r} (not in the allowlist)")
    if step.queue is not None and step.queue not in queues.ALL_QUEUES:
        problems.append(f"step {step.name!r}: unknown queue {step.queue!r}")
    if isinstance(step.retries, bool) or not isinstance(step.retries, int):
        problems.append(f"step {step.name!r}: retries must be an integer")
    elif not 0 <= step.retries <= MAX_RETRIES:
        problems.append(f"step {step.name!r}: retries must be in 0..{MAX_RETRIES}")
    if not isinstance(step.retry_delay, int | float) or not 0 <= step.retry_delay <= 60:
        problems.append(f"step {step.name!r}: retry_delay must be 0..60 seconds")
    timeout, longest = step.timeout, max_timeout()
    if timeout is not None and (not isinstance(timeout, int | float) or not 0 < timeout <= longest):
        problems.append(
            f"step {step.name!r}: timeout must be in (0, {longest:g}] seconds (its hard "
            f"limit, {HARD_LIMIT_GRACE:g}s later, must end before the broker redelivers it)"
        )
    return problems


def validate(workflow: Workflow, allowed_tasks: Collection[str]) -> Workflow:
    """Return ``workflow`` if it can run; else raise :class:`WorkflowDefinitionError`."""
    problems: list[str] = []
    if not NAME_PATTERN.match(workflow.name or ""):
        problems.append(f"workflow name {workflow.name!r} must match {NAME_PATTERN.pattern}")
    if not workflow.steps:
        problems.append("a workflow needs at least one step")
    if len(workflow.steps) > MAX_STEPS:
        problems.append(f"at most {MAX_STEPS} steps, got {len(workflow.steps)}")
    names = [s.name for s in workflow.steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"duplicate step names: {', '.join(duplicates)}")
    for step in workflow.steps:
        problems += _step_problems(step, allowed_tasks)
        for dep in step.depends_on:
            if dep not in names:
                problems.append(f"step {step.name!r} depends on unknown step {dep!r}")
            elif dep == step.name:
                problems.append(f"step {step.name!r} depends on itself")
    cycle = find_cycle({s.name: s.depends_on for s in workflow.steps})
    if cycle and len(cycle) > 2:
        problems.append(f"cycle: {' -> '.join(cycle)}")
    if problems:
        raise WorkflowDefinitionError(f"invalid workflow {workflow.name!r}: " + "; ".join(problems))
    return workflow


def layers(steps: Iterable[Step]) -> list[list[str]]:
    """Steps grouped by depth, definition order inside a layer. Assumes no cycle."""
    steps = list(steps)
    depth: dict[str, int] = {}
    remaining = list(steps)
    while remaining:
        ready = [s for s in remaining if all(d in depth for d in s.depends_on)]
        if not ready:
            raise WorkflowDefinitionError("the steps form a cycle")
        for step in ready:
            depth[step.name] = 1 + max((depth[d] for d in step.depends_on), default=-1)
        remaining = [s for s in remaining if s.name not in depth]
    grouped: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in steps:
        grouped[depth[step.name]].append(step.name)
    return grouped
