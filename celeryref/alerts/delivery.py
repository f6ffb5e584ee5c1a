"""Operator alerts: a dead-lettered task or a CRITICAL error reaches a human.

:func:`deliver` sends one :class:`Alert` to every channel an :class:`AlertConfig`
enables (senders in :mod:`celeryref.alerts.channels`): a JSON webhook
(``ALERT_WEBHOOK_URL``) and e-mail (``SMTP_HOST`` plus ``ALERT_EMAIL_TO``; in
development the ``mailsink`` service, see :mod:`devtools.mailsink`). Failures map
onto :mod:`celeryref.errors`:

* :class:`~celeryref.errors.UpstreamUnavailable` (retry): connection refused or
  reset, timeout, HTTP 5xx/408/429, SMTP 4xx.
* :class:`~celeryref.errors.BadRequestUpstream` (do not retry): HTTP 3xx/4xx,
  unusable webhook URL, SMTP 5xx (e.g. every recipient refused).

Webhook URLs often carry a secret token in their path (Slack, Teams), so errors and
logs name only the URL's scheme, host and port.
"""

from __future__ import annotations

import logging

from celeryref.alerts import channels as alert_channels
from celeryref.alerts.model import Alert, AlertConfig

logger = logging.getLogger(__name__)

__all__ = ["Alert", "AlertConfig", "deliver"]


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
