"""Notification e-mail: plain text over SMTP, every sending task logged in ``email_logs``.

The SMTP server is the alerts' (``SMTP_HOST``/``SMTP_PORT``, sender
``ALERT_EMAIL_FROM``): the ``mailsink`` service in development. Messages are built
and sent by :mod:`celeryref.adapters.smtp`, the one SMTP client of the project.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr

from celeryref.adapters import db
from celeryref.errors import InvalidArguments

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
