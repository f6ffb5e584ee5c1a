"""The two channels of :mod:`celeryref.alerts.delivery`: a JSON webhook and plain-text e-mail.

Each sender raises :class:`~celeryref.errors.UpstreamUnavailable` when trying again
later can help (timeouts, 5xx, 408/429, SMTP 4xx) and
:class:`~celeryref.errors.BadRequestUpstream` when it cannot (an unusable URL, other
4xx, a redirect, SMTP 5xx). A webhook URL often carries its token in the path: it is
never logged or raised whole (:func:`redact_url`).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from urllib.parse import urlsplit

import requests

from celeryref.adapters import smtp
from celeryref.alerts.model import Alert, redact_url
from celeryref.errors import BadRequestUpstream, UpstreamUnavailable, http_status_error

logger = logging.getLogger(__name__)

#: Seconds to connect and seconds to wait for the answer of a webhook POST.
DEFAULT_WEBHOOK_TIMEOUT = (3.05, 10.0)

#: requests errors that mean the URL itself cannot work; everything else is transport.
_UNUSABLE_URL_ERRORS: tuple[type[requests.RequestException], ...] = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.URLRequired,
)


def _scrub(text: str, url: str) -> str:
    """``text`` without ``url``'s path and query (requests quotes them in its errors)."""
    text = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    secret = parts.path + (f"?{parts.query}" if parts.query else "")
    if secret.strip("/"):
        text = text.replace(secret, "/<redacted>")
    return text


def send_webhook(
    alert: Alert,
    url: str,
    timeout: tuple[float, float] = DEFAULT_WEBHOOK_TIMEOUT,
) -> None:
    """POST ``alert`` as JSON to ``url``; redirects are not followed (a POST turned
    into a GET by a 301/302 would look delivered)."""
    target = redact_url(url)
    try:
        response = requests.post(
            url,
            json=alert.to_dict(),
            timeout=timeout,
            allow_redirects=False,
            headers={"User-Agent": "celeryref-alerts"},
        )
    except _UNUSABLE_URL_ERRORS as exc:
        reason = _scrub(str(exc), url)
        raise BadRequestUpstream(f"webhook URL {target} is unusable: {reason}") from None
    except requests.Timeout:
        raise UpstreamUnavailable(
            f"webhook {target} timed out (connect/read timeouts {timeout[0]}s/{timeout[1]}s)"
        ) from None
    except requests.RequestException as exc:
        reason = _scrub(str(exc), url)
        raise UpstreamUnavailable(f"webhook {target}: {type(exc).__name__}: {reason}") from None
    status = response.status_code
    if status < 300:
        return
    answer = f"webhook {target} answered {status}: {response.text[:200]!r}"
    if status < 400:  # a redirect, not followed: permanent
        answer += "; set ALERT_WEBHOOK_URL to the final URL"
    raise http_status_error(status, answer)


def build_email(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    """The plain-text message :func:`send_email` sends."""
    message = smtp.build(sender, recipients, alert.subject, alert.as_text())
    message["X-Alert-Severity"] = alert.severity
    message["X-Alert-Source"] = " ".join(alert.source.split())
    return message


def send_email(
    alert: Alert,
    host: str,
    port: int,
    sender: str,
    recipients: list[str],
    timeout: float = smtp.TIMEOUT,
) -> None:
    """Send ``alert`` as plain text to ``recipients`` through the SMTP server
    (:func:`celeryref.adapters.smtp.send`: its errors, transient or permanent).

    When some recipients are refused and others accepted, the message was delivered:
    the refusals are logged, nothing is raised (raising would re-send to the others).
    """
    if not recipients:
        raise ValueError("send_email needs at least one recipient")
    refused = smtp.send(build_email(alert, sender, recipients), host, port, timeout)
    if refused:
        logger.warning(
            "alert %r: SMTP %s:%s refused some recipients: %s", alert.title, host, port, refused
        )
