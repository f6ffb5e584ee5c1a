"""Conditional processing: analyze data, then dispatch the allowlisted follow-ups it calls for.

Follow-ups are fire-and-forget (``send_task`` of a name from
:data:`celeryref.domain.follow_ups.FOLLOW_UPS`): this task never waits for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celeryref.celery_app import app
from celeryref.domain import data_processing as recs
from celeryref.domain import datasets
from celeryref.domain.follow_ups import FOLLOW_UPS, Thresholds, decide, enabled
from celeryref.settings import settings


def dispatch(
    decisions: Sequence[tuple[str, str]],
    source: dict[str, Any],
    recipients: Sequence[str],
    title: str,
) -> list[dict[str, Any]]:
    """Send the follow-up task of each decision; ``[{follow_up, reason, task_id}]``.

    ``source`` is what a report reads (``{"dataset": NAME}`` or ``{"records": [...]}``);
    alerts go to ``recipients`` and are left out (with the reason) when there are none.
    """
    sent: list[dict[str, Any]] = []
    for name, reason in decisions:
        if name == "report":
            kwargs: dict[str, Any] = {**source, "title": f"{title}: report"}
        elif recipients:
            subject = f"{title}: {name.replace('_', ' ')}"
            kwargs = {"recipients": list(recipients), "subject": subject, "body": reason + "\n"}
        else:
            sent.append({"follow_up": name, "reason": reason, "task_id": None})
            continue
        result = app.send_task(FOLLOW_UPS[name], kwargs=kwargs)
        sent.append({"follow_up": name, "reason": reason, "task_id": result.id})
    return sent


def recipients_of(data: dict[str, Any]) -> list[str]:
    """The input's ``notify`` addresses, else the operators (``ALERT_EMAIL_TO``)."""
    return list(data.get("notify") or settings.alerts.recipients)


@app.task
def conditional_processing(
    dataset: str | None = None,
    records: list[Any] | None = None,
    thresholds: dict[str, Any] | None = None,
    follow_ups: list[str] | None = None,
    notify: list[str] | None = None,
    title: str = "Conditional processing",
) -> dict[str, Any]:
    """Validate and analyze ``dataset`` (or inline ``records``); dispatch the follow-ups
    (``report``, ``quality_alert``, ``high_value_alert``) whose conditions hold."""
    source: dict[str, Any] = {"dataset": dataset} if records is None else {"records": records}
    valid, rejected = recs.validate(datasets.input_records(source))
    analysis = recs.analyze(recs.clean(valid))
    decisions = decide(
        len(valid), len(rejected), analysis, Thresholds.from_dict(thresholds), enabled(follow_ups)
    )
    report_source = source if records is None else {"records": valid}
    dispatched = dispatch(decisions, report_source, recipients_of({"notify": notify}), title)
    return {
        "valid": len(valid),
        "invalid": len(rejected),
        "analysis": analysis,
        "dispatched": dispatched,
    }
