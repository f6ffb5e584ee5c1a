"""Operator alerts: a dead-lettered task or a CRITICAL error reaches a human.

:func:`deliver` sends one :class:`Alert` to every channel an :class:`AlertConfig`
enables (senders in :mod:`celeryref.alert_channels`): a JSON webhook
(``ALERT_WEBHOOK_URL``) and e-mail (``SMTP_HOST`` plus ``ALERT_EMAIL_TO``; in
development the ``mailsink`` service, see :mod:`celeryref.mailsink`). Failures map
onto :mod:`celeryref.errors`:

* :class:`~celeryref.errors.UpstreamUnavailable` (retry): connection refused or
  reset, timeout, HTTP 5xx/408/429, SMTP 4xx.
* :class:`~celeryref.errors.BadRequestUpstream` (do not retry): HTTP 3xx/4xx,
  unusable webhook URL, SMTP 5xx (e.g. every recipient refused).

Webhook URLs often carry a secret token in their path (Slack, Teams), so errors and
logs name only the URL's scheme, host and port.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from celeryref import alert_channels

logger = logging.getLogger(__name__)

#: Allowed values of :attr:`Alert.severity`, lowest first (names of ``errors.Severity``).
SEVERITIES = ("low", "medium", "high", "critical")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Alert:
    """What went wrong, where, and the facts an operator needs to act on it."""

    title: str
    body: str
    #: One of :data:`SEVERITIES`.
    severity: str
    #: Where it happened, e.g. the task name.
    source: str
    #: JSON-serializable facts (task id, args, exception, dead-letter id, ...).
    details: dict[str, Any] = field(default_factory=dict)
    #: ISO-8601 UTC time the alert was raised.
    created_at: str = field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        try:
            json.dumps(self.details)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"alert details must be JSON-serializable: {exc}") from exc

    @property
    def subject(self) -> str:
        """``[SEVERITY] title`` on one line (a newline in a header would be refused)."""
        return f"[{self.severity.upper()}] {' '.join(self.title.split())}"

    def to_dict(self) -> dict[str, Any]:
        """The webhook payload."""
        return asdict(self)

    def as_text(self) -> str:
        """The plain-text e-mail body."""
        details = json.dumps(self.details, indent=2, sort_keys=True, default=str)
        return (
            f"{self.body}\n\n"
            f"Severity:   {self.severity}\n"
            f"Source:     {self.source}\n"
            f"Created at: {self.created_at}\n\n"
            f"Details:\n{details}\n"
        )


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go. A channel is on when its settings are present."""

    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 1025
    sender: str = "celeryref@localhost"
    recipients: tuple[str, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels :func:`deliver` uses, in the order it tries them."""
        webhook = ("webhook",) if self.webhook_url else ()
        email = ("email",) if self.smtp_host and self.recipients else ()
        return webhook + email

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AlertConfig:
        """Read ``ALERT_WEBHOOK_URL``, ``SMTP_HOST``, ``SMTP_PORT``, ``ALERT_EMAIL_FROM``
        and ``ALERT_EMAIL_TO`` (comma-separated). Empty values count as unset;
        a combination that cannot work raises ``ValueError``."""
        default = cls()
        webhook_url = env.get("ALERT_WEBHOOK_URL", "").strip() or None
        if webhook_url and not webhook_url.lower().startswith(("http://", "https://")):
            shown = alert_channels.redact_url(webhook_url)
            raise ValueError(f"ALERT_WEBHOOK_URL must be an http(s) URL, got {shown}")
        smtp_host = env.get("SMTP_HOST", "").strip() or None
        raw_port = env.get("SMTP_PORT", "").strip()
        try:
            smtp_port = int(raw_port) if raw_port else default.smtp_port
        except ValueError:
            raise ValueError(f"SMTP_PORT must be an integer, got {raw_port!r}") from None
        if not 0 < smtp_port < 65_536:
            raise ValueError(f"SMTP_PORT must be a TCP port, got {smtp_port}")
        recipients = tuple(
            addr.strip() for addr in env.get("ALERT_EMAIL_TO", "").split(",") if addr.strip()
        )
        if recipients and not smtp_host:
            raise ValueError("ALERT_EMAIL_TO is set but SMTP_HOST is not: e-mail cannot be sent")
        return cls(
            webhook_url=webhook_url,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            sender=env.get("ALERT_EMAIL_FROM", "").strip() or default.sender,
            recipients=recipients,
        )


def deliver(alert: Alert, config: AlertConfig) -> list[str]:
    """Send ``alert`` to every configured channel; return the channels that took it.

    One working channel is enough: the others' failures are logged. When every
    configured channel fails, the first channel's error is raised. With no channel
    configured nothing is sent, a warning is logged and ``[]`` is returned.
    """
    if not config.channels:
        logger.warning(
            "alert %r (%s, from %s) not sent: no alert channel configured "
            "(set ALERT_WEBHOOK_URL, or SMTP_HOST and ALERT_EMAIL_TO)",
            alert.title,
            alert.severity,
            alert.source,
        )
        return []

    used: list[str] = []
    failures: list[tuple[str, Exception]] = []
    for channel in config.channels:
        try:
            if channel == "webhook":
                alert_channels.send_webhook(alert, config.webhook_url or "")
            else:
                alert_channels.send_email(
                    alert,
                    config.smtp_host or "",
                    config.smtp_port,
                    config.sender,
                    list(config.recipients),
                )
        # Any failure, even a bug in one channel, must not keep the alert from the others.
        except Exception as exc:
            failures.append((channel, exc))
        else:
            used.append(channel)
    if not used:
        raise failures[0][1]
    for channel, error in failures:
        logger.error(
            "alert %r: %s channel failed (%s: %s); delivered via %s",
            alert.title,
            channel,
            type(error).__name__,
            error,
            ", ".join(used),
        )
    return used
