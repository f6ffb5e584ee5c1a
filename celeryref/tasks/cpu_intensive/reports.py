"""Reports on ``cpu_intensive``: generated in phases with ``PROGRESS``, written to a file.

Files go to ``REPORT_DIR`` (the ``reports`` volume of ``worker-cpu``), named after
the task id, written to a temporary name and renamed: a reader never sees half a
report, and a re-run of the same task replaces its own file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from celery import current_task

from celeryref.celery_app import app
from celeryref.domain import data_processing as recs
from celeryref.domain import datasets
from celeryref.errors import InvalidArguments
from celeryref.observability.progress import PROGRESS, progress_meta
from celeryref.settings import settings
from celeryref.workflows.step_task import StepTask, workflow_step

#: The phases of :func:`generate_report`, in order (the ``status`` of its progress).
PHASES = ("load", "validate", "analyze", "render", "write")


def write_report(task_id: str, text: str) -> dict[str, Any]:
    """Write ``text`` atomically to ``REPORT_DIR/report-<task_id>.md``; path, size, hash."""
    folder = Path(settings.report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"report-{task_id}.md"
    data = text.encode("utf-8")
    partial = path.with_suffix(".md.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return {"path": str(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _title(value: object) -> str:
    title = "Report" if value is None else value
    if not isinstance(title, str) or not 0 < len(title) <= 200:
        raise InvalidArguments("title must be 1..200 characters")
    return " ".join(title.split())


@app.task(bind=True)
def generate_report(
    self: Any,
    dataset: str | None = None,
    records: list[Any] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Report on ``dataset`` (or inline ``records``): load, validate, analyze, render,
    write, reporting each phase as ``PROGRESS``."""
    name = _title(title)

    def phase(index: int) -> None:
        status = f"{PHASES[index]} ({index + 1}/{len(PHASES)})"
        self.update_state(state=PROGRESS, meta=progress_meta(index, len(PHASES), status))

    phase(0)
    source = {"records": records} if records is not None else {"dataset": dataset}
    raw = datasets.input_records(source)
    phase(1)
    valid, rejected = recs.validate(raw)
    phase(2)
    analysis = recs.analyze(recs.clean(valid))
    phase(3)
    notes = [f"{len(rejected)} of {len(raw)} records rejected"] if rejected else []
    text = recs.render_report(name, analysis, notes)
    phase(4)
    written = write_report(str(self.request.id), text)
    return {**written, "records": len(raw), "rejected": len(rejected)}


@app.task(bind=True, base=StepTask)
@workflow_step
def report_step(data: Any, upstream: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Workflow step: render the ``analysis`` of a dependency into a report file."""
    analyses = [r["analysis"] for r in upstream.values() if isinstance(r, dict) and "analysis" in r]
    if not analyses:
        raise InvalidArguments("report needs a dependency whose result has an 'analysis'")
    title = _title(params.get("title") or data.get("title"))
    return write_report(str(current_task.request.id), recs.render_report(title, analyses[0]))
