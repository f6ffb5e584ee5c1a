"""The record-processing steps of the built-in workflows (allowlisted in
:mod:`celeryref.workflows.registry`). Each takes the records of its dependencies
(or, for the first step, of the workflow's input) and returns a small JSON result.
"""

from __future__ import annotations

import time
from typing import Any

from celeryref.celery_app import app
from celeryref.domain import data_processing as recs
from celeryref.domain import datasets
from celeryref.domain.follow_ups import Thresholds, decide, enabled
from celeryref.errors import InvalidArguments
from celeryref.tasks.default.conditional import dispatch, recipients_of
from celeryref.workflows.step_task import StepTask, workflow_step

#: Longest ``flow.wait`` (seconds).
MAX_WAIT = 60.0


def records_from(data: Any, upstream: dict[str, Any]) -> list[Any]:
    """Records of the dependencies that return some (in name order), else of the input."""
    found = [upstream[n]["records"] for n in sorted(upstream) if "records" in upstream[n]]
    if found:
        return [r for batch in found for r in batch]
    return datasets.input_records(data)


def _result_with(upstream: dict[str, Any], key: str) -> Any:
    for name in sorted(upstream):
        if isinstance(upstream[name], dict) and key in upstream[name]:
            return upstream[name][key]
    raise InvalidArguments(f"this step needs a dependency whose result has {key!r}")


@app.task(bind=True, base=StepTask)
@workflow_step
def validate_records(data: Any, upstream: dict[str, Any], params: dict[str, Any]) -> Any:
    """Keep valid records, list the rejected ones; param ``strict``: any rejected fails."""
    valid, rejected = recs.validate(records_from(data, upstream))
    if params.get("strict") and rejected:
        reasons = "; ".join(f"#{r['index']}: {r['reason']}" for r in rejected[:5])
        raise InvalidArguments(f"{len(rejected)} invalid records ({reasons})")
    return {"records": valid, "rejected": rejected, "valid": len(valid), "invalid": len(rejected)}


@app.task(bind=True, base=StepTask)
@workflow_step
def clean_records(data: Any, upstream: dict[str, Any], params: dict[str, Any]) -> Any:
    """Collapse whitespace, lower-case categories, drop duplicate ids."""
    return {"records": recs.clean(records_from(data, upstream))}


@app.task(bind=True, base=StepTask)
@workflow_step
def transform_records(data: Any, upstream: dict[str, Any], params: dict[str, Any]) -> Any:
    """Round values, add the calculated field ``normalized``."""
    return {"records": recs.transform(records_from(data, upstream))}


@app.task(bind=True, base=StepTask)
@workflow_step
def analyze_records(data: Any, upstream: dict[str, Any], params: dict[str, Any]) -> Any:
    """Statistics of ``value`` overall and per category."""
    return {"analysis": recs.analyze(records_from(data, upstream))}


@app.task(bind=True, base=StepTask)
@workflow_step
def dispatch_follow_ups(data: Any, upstream: dict[str, Any], params: dict[str, Any]) -> Any:
    """Dispatch the allowlisted follow-ups whose conditions hold on the analysis."""
    analysis = _result_with(upstream, "analysis")
    valid, invalid = int(analysis["count"]), int(_result_with(upstream, "invalid"))
    thresholds = Thresholds.from_dict(data.get("thresholds") or params.get("thresholds"))
    decisions = decide(valid, invalid, analysis, thresholds, enabled(data.get("follow_ups")))
    source = {"dataset": data["dataset"]} if "dataset" in data else {"records": data["records"]}
    title = str(data.get("title") or "Conditional processing")
    return {"dispatched": dispatch(decisions, source, recipients_of(data), title)}


@app.task(bind=True, base=StepTask)
@workflow_step
def wait(data: Any, upstream: dict[str, Any], params: dict[str, Any]) -> Any:
    """Hold for ``params.seconds`` (at most 60): a stand-in for a slow external step.
    It occupies a worker slot while it waits."""
    seconds = params.get("seconds", 1.0)
    if not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_WAIT:
        raise InvalidArguments(f"seconds must be in 0..{MAX_WAIT:g}")
    time.sleep(seconds)
    return {"waited": seconds}
