"""The built-in workflows.

``data_processing``: validate -> clean -> transform -> analyze -> report -> notify.
Input: ``{"records": [...]}`` (inline, at most 10 000) or ``{"dataset": NAME}``
(rows of ``dataset_records``); optional ``"title"`` of the report and ``"notify"``
(recipient addresses; default the operators' ``ALERT_EMAIL_TO``).

``conditional_processing``: validate -> clean -> analyze -> dispatch -> notify.
``dispatch`` evaluates the conditions of :mod:`celeryref.domain.follow_ups` on the
analysis (too many invalid records, enough records for a report, a value over a
threshold) and dispatches the allowlisted follow-up tasks that apply; the e-mail
says which. Input as above, plus optional ``"thresholds"`` and ``"follow_ups"``.
"""

from __future__ import annotations

from celeryref.workflows.definition import Step, Workflow

DATA_PROCESSING = Workflow(
    name="data_processing",
    description="validate -> clean -> transform -> analyze -> report -> notify",
    steps=(
        Step("validate", "records.validate"),
        Step("clean", "records.clean", depends_on=("validate",)),
        Step("transform", "records.transform", depends_on=("clean",)),
        Step("analyze", "records.analyze", depends_on=("transform",)),
        Step("report", "reports.generate", depends_on=("analyze",), timeout=120),
        Step("notify", "email.notify", depends_on=("report",), retries=5, timeout=60),
    ),
)

CONDITIONAL_PROCESSING = Workflow(
    name="conditional_processing",
    description="validate -> clean -> analyze -> dispatch allowlisted follow-ups -> notify",
    steps=(
        Step("validate", "records.validate"),
        Step("clean", "records.clean", depends_on=("validate",)),
        Step("analyze", "records.analyze", depends_on=("clean",)),
        Step("dispatch", "conditions.dispatch", depends_on=("validate", "analyze")),
        Step("notify", "email.notify", depends_on=("dispatch",), retries=5, timeout=60),
    ),
)

BUILTIN_WORKFLOWS = (DATA_PROCESSING, CONDITIONAL_PROCESSING)
