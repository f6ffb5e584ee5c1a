"""The allowlist of step tasks and the registry of workflow definitions.

A definition names its step tasks by public name (``records.validate``); only the
names in :data:`STEP_TASKS` exist, so a definition, or a message, can never make a
worker run an arbitrary task. Workflows are code: every process registers the
same definitions at import (the built-ins below, plus :func:`register` calls).
Executions snapshot their steps into Postgres at start, so a definition changed
later never affects a running execution.
"""

from __future__ import annotations

from types import MappingProxyType

from celeryref import queues
from celeryref.errors import InvalidArguments
from celeryref.settings import SettingsError, settings
from celeryref.workflows import builtin
from celeryref.workflows.definition import Workflow, WorkflowDefinitionError, validate

_T = queues.TASK_PACKAGE

#: Public step-task name -> Celery task name. Every task here is built with
#: :func:`celeryref.workflows.step_task.workflow_step`.
STEP_TASKS = MappingProxyType(
    {
        "records.validate": f"{_T}.default.workflow_steps.validate_records",
        "records.clean": f"{_T}.default.workflow_steps.clean_records",
        "records.transform": f"{_T}.default.workflow_steps.transform_records",
        "records.analyze": f"{_T}.default.workflow_steps.analyze_records",
        "conditions.dispatch": f"{_T}.default.workflow_steps.dispatch_follow_ups",
        "flow.wait": f"{_T}.default.workflow_steps.wait",
        "reports.generate": f"{_T}.cpu_intensive.reports.report_step",
        "email.notify": f"{_T}.io_intensive.email.notify_step",
    }
)


def task_name(public_name: str) -> str:
    """The Celery task name of an allowlisted step task."""
    try:
        return STEP_TASKS[public_name]
    except KeyError:
        raise InvalidArguments(f"unknown step task {public_name!r}") from None


def task_queue(public_name: str) -> str:
    """The queue a step task runs on by default: its module's (``celeryref.tasks.<queue>``)."""
    return task_name(public_name).removeprefix(f"{_T}.").split(".", 1)[0]


_workflows: dict[str, Workflow] = {}


def register(workflow: Workflow) -> Workflow:
    """Validate ``workflow`` and make it startable by name in this process."""
    _workflows[workflow.name] = validate(workflow, STEP_TASKS)
    return workflow


def get(name: str) -> Workflow:
    """The registered workflow ``name``; the error lists the known ones."""
    try:
        return _workflows[name]
    except KeyError:
        known = ", ".join(sorted(_workflows)) or "none"
        raise InvalidArguments(f"unknown workflow {name!r} (known: {known})") from None


def names() -> list[str]:
    return sorted(_workflows)


def _register_builtins() -> None:
    """Register the built-in workflows; a deployment whose settings cannot run one of
    them (a step timeout that does not fit under ``BROKER_VISIBILITY_TIMEOUT``) fails at
    start with a :class:`~celeryref.settings.SettingsError` naming the variable."""
    for workflow in builtin.BUILTIN_WORKFLOWS:
        try:
            register(workflow)
        except WorkflowDefinitionError as exc:
            raise SettingsError(
                f"BROKER_VISIBILITY_TIMEOUT={settings.broker_visibility_timeout} cannot run the"
                f" built-in workflow {workflow.name!r}: {exc}. Raise BROKER_VISIBILITY_TIMEOUT"
                " above the longest step's timeout + its hard-limit grace + the margin"
                " (docs/RELIABILITY.md, F23)."
            ) from None


_register_builtins()
