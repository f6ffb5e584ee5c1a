"""Notification e-mail on ``io_intensive``: real SMTP, every send logged in ``email_logs``."""

from __future__ import annotations

import json
from typing import Any

from celery import current_task

from celeryref.adapters import smtp
from celeryref.celery_app import app
from celeryref.domain import notifications as mail
from celeryref.errors import InvalidArguments
from celeryref.reliability import time_budget
from celeryref.reliability.retry import RetryPolicy
from celeryref.settings import settings
from celeryref.workflows.step_task import StepTask, workflow_step

#: SMTP hiccups: ~2 s, 4 s, 8 s ... capped at 120 s, five retries.
NOTIFY_POLICY = RetryPolicy(max_retries=5, base_delay=2.0, max_delay=120.0)
#: Lists longer than this are shown as their length in summaries.
BRIEF_LIST_ITEMS = 5


def deliver(task_id: str, recipients: Any, subject: Any, body: Any) -> dict[str, Any]:
    """Send one plain-text e-mail through the configured SMTP server and log the outcome."""
    to = mail.check_message(recipients, subject, body)
    config = settings.alerts
    if not config.smtp_host:
        raise InvalidArguments("no SMTP server configured (SMTP_HOST)")
    message = smtp.build(config.sender, to, subject, body)
    try:
        smtp.send(
            message, config.smtp_host, config.smtp_port, time_budget.call_timeout(smtp.TIMEOUT)
        )
    except Exception as exc:
        mail.log(task_id, config.sender, to, subject, f"{type(exc).__name__}: {exc}")
        raise
    mail.log(task_id, config.sender, to, subject, None)
    return {"sent": True, "recipients": to, "subject": subject, "message_id": message["Message-ID"]}


def brief(value: Any) -> Any:
    """``value`` with long lists replaced by ``"<n items>"``: readable in an e-mail."""
    if isinstance(value, dict):
        return {k: brief(v) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > BRIEF_LIST_ITEMS:
            return f"<{len(value)} items>"
        return [brief(v) for v in value]
    return value


@app.task(bind=True, retry_policy=NOTIFY_POLICY)
def send_notification(self: Any, recipients: list[str], subject: str, body: str) -> dict[str, Any]:
    """E-mail ``body`` to ``recipients``; SMTP failures are retried, each attempt logged."""
    return deliver(str(self.request.id), recipients, subject, body)


@app.task(bind=True, base=StepTask)
@workflow_step
def notify_step(data: Any, upstream: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Workflow step: e-mail a summary of the dependencies' results to the input's
    ``notify`` addresses (default: the operators, ``ALERT_EMAIL_TO``)."""
    recipients = data.get("notify") or list(settings.alerts.recipients)
    if not recipients:
        return {"sent": False, "reason": "no recipients (input 'notify' or ALERT_EMAIL_TO)"}
    subject = str(params.get("subject") or data.get("title") or "Workflow finished")
    body = json.dumps(brief(upstream), indent=2, sort_keys=True, default=str)
    return deliver(str(current_task.request.id), recipients, subject, body + "\n")
