"""What an operator alert is, and where alerts go: :class:`Alert` and :class:`AlertConfig`.

:class:`AlertConfig` is defined beside the settings that build it
(:attr:`celeryref.settings.Settings.alerts`) and re-exported here. No I/O here:
:mod:`celeryref.alerts.channels` sends, :mod:`celeryref.alerts.delivery` picks the
channels. Webhook URLs often carry a secret token in their path (Slack,
Teams), so anything logged or raised names only the URL's scheme, host and port
(:func:`redact_url`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from celeryref.settings import AlertConfig

__all__ = ["SEVERITIES", "Alert", "AlertConfig", "redact_url"]

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


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: safe to log when the path holds a token."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"
