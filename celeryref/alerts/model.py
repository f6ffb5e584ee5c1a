"""What an operator alert is, and where alerts go: :class:`Alert` and :class:`AlertConfig`.

No I/O here: :mod:`celeryref.alerts.channels` sends, :mod:`celeryref.alerts.delivery`
picks the channels. Webhook URLs often carry a secret token in their path (Slack,
Teams), so anything logged or raised names only the URL's scheme, host and port
(:func:`redact_url`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

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
            shown = redact_url(webhook_url)
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


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: safe to log when the path holds a token."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"
