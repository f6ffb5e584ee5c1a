"""An SMTP sink with a JSON API: the deployment's offline e-mail target.

``python -m devtools.mailsink --smtp-port 1025 --http-port 8025 [--max-messages 1000]``

Accepts every message for every recipient over SMTP (aiosmtpd), keeps the newest
``--max-messages`` in memory (older ones are dropped; each is at most
``--max-message-bytes``, so memory stays bounded), and serves them over HTTP:

* ``GET /messages``: every kept message in arrival order, as JSON objects with
  ``id``, ``received_at`` (ISO-8601 UTC), ``mail_from``, ``rcpt_tos``, ``subject``,
  ``body`` (the text/plain part) and ``headers`` (name -> list of values).
* ``GET /messages?to=ADDR``: only messages whose envelope recipients include ADDR
  (case-insensitive; Bcc recipients count, since they are envelope recipients).
* ``DELETE /messages``: forget every message; answers ``{"deleted": n}``.
* ``GET /healthz``: 200 while the process runs.

For development and tests only: no authentication, nothing is relayed or persisted.
SIGTERM or SIGINT stops both servers and exits 0.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import json
import logging
import signal
import socket
import sys
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from celeryref.observability import logs

logger = logging.getLogger(__name__)

#: Messages kept in memory; the oldest is dropped when a new one arrives.
DEFAULT_MAX_MESSAGES = 1_000
#: Largest message (bytes) accepted over SMTP; bigger ones get ``552``.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576


@dataclass(frozen=True)
class StoredMessage:
    """One received message, as the HTTP API returns it."""

    #: Increases by one per message received since start (never reused).
    id: int
    received_at: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    #: The text/plain part, decoded, with ``\n`` line ends; ``""`` when there is none.
    body: str
    headers: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rcpt_tos"] = list(self.rcpt_tos)
        return data


def _plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # unknown or lying charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    # SMTP carries CRLF line ends; return the text as it was written.
    return content.replace("\r\n", "\n") if isinstance(content, str) else ""


def parse_message(
    raw: bytes, *, message_id: int, mail_from: str, rcpt_tos: list[str], received_at: str
) -> StoredMessage:
    """Turn the DATA of one SMTP transaction into a :class:`StoredMessage`."""
    message = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
    headers: dict[str, list[str]] = {}
    for name, value in message.items():
        headers.setdefault(name, []).append(str(value))
    return StoredMessage(
        id=message_id,
        received_at=received_at,
        mail_from=mail_from,
        rcpt_tos=tuple(rcpt_tos),
        subject=str(message.get("Subject", "")),
        body=_plain_text(message),
        headers=headers,
    )


class MessageStore:
    """The newest ``max_messages`` messages; safe to share between threads."""

    def __init__(self, max_messages: int) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self._messages: deque[StoredMessage] = deque(maxlen=max_messages)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> StoredMessage:
        received_at = datetime.now(UTC).isoformat()
        with self._lock:
            stored = parse_message(
                raw,
                message_id=next(self._ids),
                mail_from=mail_from,
                rcpt_tos=rcpt_tos,
                received_at=received_at,
            )
            self._messages.append(stored)
        return stored

    def messages(self, to: str | None = None) -> list[StoredMessage]:
        with self._lock:
            messages = list(self._messages)
        if to is None:
            return messages
        wanted = to.strip().lower()
        return [m for m in messages if wanted in (r.lower() for r in m.rcpt_tos)]

    def clear(self) -> int:
        with self._lock:
            count = len(self._messages)
            self._messages.clear()
        return count


class SinkHandler:
    """aiosmtpd handler: stores every message and answers ``250``."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content.encode("utf-8") if isinstance(content, str) else content
        stored = self.store.add(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        logger.info(
            "message %d from %s to %s: %s",
            stored.id,
            stored.mail_from,
            ", ".join(stored.rcpt_tos),
            stored.subject,
        )
        return "250 Message accepted for delivery"


class ApiServer(ThreadingHTTPServer):
    """The JSON API; ``store`` is what the request handler reads."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: MessageStore) -> None:
        self.store = store
        super().__init__(address, ApiHandler)


class ApiHandler(BaseHTTPRequestHandler):
    server: ApiServer

    def _send_json(self, status: HTTPStatus, payload: object) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self) -> None:
        self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no route for {self.command} {self.path}"})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        elif url.path == "/messages":
            to = parse_qs(url.query).get("to", [None])[-1]
            messages = self.server.store.messages(to=to)
            self._send_json(HTTPStatus.OK, [m.to_json() for m in messages])
        else:
            self._not_found()

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path == "/messages":
            self._send_json(HTTPStatus.OK, {"deleted": self.server.store.clear()})
        else:
            self._not_found()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        logger.debug("http %s " + format, self.client_address[0], *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.mailsink", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0", help="address both servers bind")  # noqa: S104 - a container service
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument("--max-messages", type=int, default=DEFAULT_MAX_MESSAGES)
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES)
    args = parser.parse_args(argv)
    if args.max_messages < 1:
        parser.error("--max-messages must be at least 1")
    if args.max_message_bytes < 1:
        parser.error("--max-message-bytes must be at least 1")
    logs.configure(logging.INFO)
    # aiosmtpd logs every SMTP command at INFO; one line per message (ours) is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    store = MessageStore(args.max_messages)
    smtp = Controller(
        SinkHandler(store),
        hostname=args.host,
        port=args.smtp_port,
        # getfqdn() (aiosmtpd's default) may block on DNS in a container.
        server_hostname=socket.gethostname(),
        data_size_limit=args.max_message_bytes,
    )
    smtp.start()
    try:
        http = ApiServer((args.host, args.http_port), store)
    except OSError:
        smtp.stop()
        raise
    http_thread = threading.Thread(target=http.serve_forever, name="mailsink-http", daemon=True)
    http_thread.start()
    logger.info(
        "mailsink: SMTP on %s:%d, HTTP API on %s:%d, keeping the newest %d messages",
        args.host,
        args.smtp_port,
        args.host,
        args.http_port,
        args.max_messages,
    )
    try:
        stop.wait()
    finally:
        http.shutdown()
        http.server_close()
        smtp.stop()
    logger.info("mailsink stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
