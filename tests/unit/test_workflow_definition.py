"""Workflow definitions: validation messages, layers, the built-ins, the allowlist."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from celeryref.workflows import registry
from celeryref.workflows.definition import (
    Step,
    Workflow,
    WorkflowDefinitionError,
    find_cycle,
    layers,
    validate,
)

TASKS = registry.STEP_TASKS


def wf(*steps: Step) -> Workflow:
    return Workflow("test_flow", steps)


def problems(workflow: Workflow) -> str:
    with pytest.raises(WorkflowDefinitionError) as info:
        validate(workflow, TASKS)
    return str(info.value)


def test_a_cycle_is_rejected_and_named() -> None:
    """A cycle a -> c -> b -> a is refused with the path spelled out."""
    message = problems(
        wf(
            Step("a", "records.validate", depends_on=("c",)),
            Step("b", "records.clean", depends_on=("a",)),
            Step("c", "records.analyze", depends_on=("b",)),
        )
    )
    assert "cycle: a -> c -> b -> a" in message


def test_unknown_dependencies_are_named() -> None:
    """Each missing dependency is named with the step that wants it."""
    message = problems(
        wf(Step("a", "records.validate"), Step("b", "records.clean", depends_on=("a", "zz")))
    )
    assert "step 'b' depends on unknown step 'zz'" in message


def test_duplicate_names_and_self_dependency_are_named() -> None:
    """Two steps called 'a' and a step depending on itself are both reported at once."""
    message = problems(
        wf(
            Step("a", "records.validate"),
            Step("a", "records.clean"),
            Step("b", "records.clean", depends_on=("b",)),
        )
    )
    assert "duplicate step names: a" in message
    assert "step 'b' depends on itself" in message


def test_unknown_task_and_queue_are_refused() -> None:
    """A task outside the allowlist (e.g. an arbitrary Celery task name) is refused."""
    message = problems(
        wf(Step("a", "celeryref.tasks.default.add"), Step("b", "records.clean", queue="nope"))
    )
    assert "unknown task 'celeryref.tasks.default.add' (not in the allowlist)" in message
    assert "unknown queue 'nope'" in message


def test_limits_on_retries_timeout_and_names() -> None:
    """Out-of-range retries and timeouts, and bad step names, are refused."""
    message = problems(
        wf(
            Step("Bad-Name", "records.validate"),
            Step("b", "records.clean", retries=99, timeout=0),
        )
    )
    assert "'Bad-Name' must match" in message
    assert "retries must be in 0..10" in message
    assert "timeout must be in (0, 3000] seconds" in message


def test_layers_group_independent_steps() -> None:
    """A diamond a -> (b, c) -> d has three layers; b and c can run together."""
    steps = [
        Step("a", "records.validate"),
        Step("b", "flow.wait", depends_on=("a",)),
        Step("c", "flow.wait", depends_on=("a",)),
        Step("d", "records.analyze", depends_on=("b", "c")),
    ]
    assert layers(steps) == [["a"], ["b", "c"], ["d"]]


def test_find_cycle_returns_none_for_a_dag() -> None:
    """No cycle in a DAG; a two-node loop is found."""
    assert find_cycle({"a": (), "b": ("a",)}) is None
    assert find_cycle({"a": ("b",), "b": ("a",)}) == ["a", "b", "a"]


def test_from_dict_parses_json_definitions_and_refuses_unknown_fields() -> None:
    """A JSON definition becomes a Workflow; a typo'd field is an error, not ignored."""
    parsed = Workflow.from_dict(
        {"name": "j", "steps": [{"name": "a", "task": "flow.wait", "params": {"seconds": 1}}]}
    )
    assert parsed.steps[0] == Step("a", "flow.wait", params={"seconds": 1})
    with pytest.raises(WorkflowDefinitionError, match="unknown fields"):
        Workflow.from_dict({"name": "j", "steps": [{"name": "a", "task": "x", "dependson": []}]})


def test_builtin_workflows_are_registered_and_valid() -> None:
    """data_processing is the six-step chain; both built-ins validate."""
    data = registry.get("data_processing")
    assert layers(data.steps) == [
        ["validate"],
        ["clean"],
        ["transform"],
        ["analyze"],
        ["report"],
        ["notify"],
    ]
    assert registry.names() == ["conditional_processing", "data_processing"]
    for name in registry.names():
        validate(registry.get(name), TASKS)


def test_step_tasks_route_to_their_module_queue() -> None:
    """The default queue of a step task is its module's queue."""
    assert registry.task_queue("records.validate") == "default"
    assert registry.task_queue("reports.generate") == "cpu_intensive"
    assert registry.task_queue("email.notify") == "io_intensive"


def test_every_allowlisted_step_task_exists() -> None:
    """Each allowlisted name maps to a registered Celery task."""
    from celeryref.celery_app import app

    app.loader.import_default_modules()
    assert set(TASKS.values()) <= set(app.tasks)


def test_a_visibility_timeout_too_short_for_a_builtin_workflow_is_a_settings_error() -> None:
    """A clear SettingsError naming the variable at start, not a crash in validation."""
    env = {
        **os.environ,
        "BROKER_VISIBILITY_TIMEOUT": "150",
        "TASK_TIME_LIMIT": "30",
        "TASK_SOFT_TIME_LIMIT": "20",
    }
    run = subprocess.run(
        [sys.executable, "-c", "import celeryref.workflows.registry"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("celeryref.settings.SettingsError: BROKER_VISIBILITY_TIMEOUT=150")
