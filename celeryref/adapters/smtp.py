"""The one SMTP client of the project: notification e-mail and operator alerts.

:func:`build` makes a plain-text message (no header injection through the subject);
:func:`send` delivers it and is the one place SMTP errors map onto
:mod:`celeryref.errors`. No database, no settings: :mod:`celeryref.alerts.delivery` (imported by
the settings) uses it too.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from celeryref.errors import BadRequestUpstream, UpstreamUnavailable

#: Seconds each SMTP socket operation may take (connect, every command).
TIMEOUT = 10.0


def build(sender: str, recipients: Sequence[str], subject: str, body: str) -> EmailMessage:
    """A plain-text message; the subject's whitespace (newlines too) is collapsed."""
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())  # a newline would inject headers
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    # An explicit domain: make_msgid() would otherwise resolve our FQDN (may block).
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or "local")
    message.set_content(body)
    return message


def send(
    message: EmailMessage, host: str, port: int, timeout: float = TIMEOUT
) -> dict[str, tuple[int, bytes]]:
    """Deliver ``message`` to its ``From``/``To`` through ``host:port``.

    Returns the recipients refused while others were accepted (the message was
    delivered: raising would send it again to the others). Errors map onto
    :mod:`celeryref.errors`: refused or failed connections, timeouts and SMTP 4xx are
    transient; SMTP 5xx (every recipient refused, sender or data refused) is permanent.
    """
    where = f"{host}:{port}"
    try:
        # local_hostname: the default getfqdn() may block on DNS, outside ``timeout``.
        with smtplib.SMTP(host, port, timeout=timeout, local_hostname=socket.gethostname()) as smtp:
            return smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {addr: code for addr, (code, _) in exc.recipients.items()}
        text = f"SMTP {where} refused every recipient: {codes}"
        if all(500 <= code < 600 for code in codes.values()):
            raise BadRequestUpstream(text) from exc
        raise UpstreamUnavailable(text) from exc
    except smtplib.SMTPConnectError as exc:  # a bad greeting: the server may come back
        raise UpstreamUnavailable(f"SMTP {where} refused the connection: {exc}") from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
        reply = exc.smtp_error
        reply_text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        text = f"SMTP {where} answered {exc.smtp_code} {reply_text}"
        if 500 <= exc.smtp_code < 600:
            raise BadRequestUpstream(text) from exc
        raise UpstreamUnavailable(text) from exc
    except (smtplib.SMTPException, OSError) as exc:
        # SMTPServerDisconnected and friends; OSError covers refused, reset, timeout, DNS.
        raise UpstreamUnavailable(f"SMTP {where}: {type(exc).__name__}: {exc}") from exc
