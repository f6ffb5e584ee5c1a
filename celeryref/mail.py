"""Notification e-mail: plain text over SMTP, every sending task logged in ``email_logs``.

The SMTP server is the alerts' (``SMTP_HOST``/``SMTP_PORT``, sender
``ALERT_EMAIL_FROM``): the ``mailsink`` service in development. Errors map onto
:mod:`celeryref.errors` as :func:`celeryref.alerts.send_email` maps them: refused
connections, timeouts and SMTP 4xx are transient; SMTP 5xx is permanent.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from celeryref import db
from celeryref.errors import BadRequestUpstream, InvalidArguments, UpstreamUnavailable

#: Seconds each SMTP operation may take.
SMTP_TIMEOUT = 10.0
#: Most recipients of one notification.
MAX_RECIPIENTS = 50
#: Longest subject (characters) and body (characters).
MAX_SUBJECT, MAX_BODY = 200, 100_000


def check_message(recipients: object, subject: object, body: object) -> list[str]:
    """The recipients, after checking all three; ``InvalidArguments`` says what is wrong."""
    if not isinstance(recipients, list | tuple) or not 0 < len(recipients) <= MAX_RECIPIENTS:
        raise InvalidArguments(f"recipients must be a list of 1..{MAX_RECIPIENTS} addresses")
    for address in recipients:
        if not isinstance(address, str) or "@" not in parseaddr(address)[1]:
            raise InvalidArguments(f"not an e-mail address: {address!r}")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT:
        raise InvalidArguments(f"subject must be 1..{MAX_SUBJECT} characters")
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise InvalidArguments(f"body must be text of at most {MAX_BODY} characters")
    return list(recipients)


def build(sender: str, recipients: Sequence[str], subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())  # a newline would inject headers
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or "local")
    message.set_content(body)
    return message


def send(message: EmailMessage, host: str, port: int, timeout: float = SMTP_TIMEOUT) -> None:
    """Deliver ``message`` to its ``From``/``To`` through ``host:port``."""
    where = f"{host}:{port}"
    try:
        with smtplib.SMTP(host, port, timeout=timeout, local_hostname=socket.gethostname()) as smtp:
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {addr: code for addr, (code, _) in exc.recipients.items()}
        error: type[Exception] = (
            BadRequestUpstream if all(c >= 500 for c in codes.values()) else UpstreamUnavailable
        )
        raise error(f"SMTP {where} refused every recipient: {codes}") from exc
    except smtplib.SMTPResponseException as exc:
        error = BadRequestUpstream if exc.smtp_code >= 500 else UpstreamUnavailable
        raise error(f"SMTP {where} answered {exc.smtp_code}: {exc.smtp_error!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise UpstreamUnavailable(f"SMTP {where}: {type(exc).__name__}: {exc}") from exc


def log(
    task_id: str,
    sender: str,
    recipients: Sequence[str],
    subject: str,
    error: str | None,
) -> None:
    """Record the latest outcome of ``task_id`` (``sent``, or ``failed`` with ``error``)."""
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO email_logs (task_id, sender, recipients, subject, status, error)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (task_id) DO UPDATE"
            " SET status = EXCLUDED.status, error = EXCLUDED.error,"
            " attempts = email_logs.attempts + 1, updated_at = now()",
            (task_id, sender, list(recipients), subject, "failed" if error else "sent", error),
        )
