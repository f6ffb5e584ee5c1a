"""Operator alerts: payload, configuration, and how channel failures map onto errors.

The webhook and SMTP peers are real servers on 127.0.0.1 inside this process
(``http.server`` and aiosmtpd), not mocks.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from celeryref.alerts.channels import redact_url, send_email, send_webhook
from celeryref.alerts.delivery import Alert, AlertConfig, deliver
from celeryref.errors import BadRequestUpstream, UpstreamUnavailable
from celeryref.settings import SettingsError, load_settings

SECRET = "T000/B000/s3cr3t-token"


def make_alert(**overrides: Any) -> Alert:
    values: dict[str, Any] = {
        "title": "Task dead-lettered",
        "body": "celeryref.tasks.default.add failed for good.",
        "severity": "critical",
        "source": "celeryref.tasks.default.add",
        "details": {"task_id": "abc", "args": [1, 2], "exception": "ValueError('x')"},
    }
    values.update(overrides)
    return Alert(**values)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, never listening: connect is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- a real webhook receiver ---------------------------------------------------------


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), WebhookHandler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class WebhookHandler(BaseHTTPRequestHandler):
    """``/ok`` records the JSON body; ``/status/N`` answers N; ``/redirect`` 302s to
    ``/ok``; ``/hang`` never answers (the connection closes when the test ends)."""

    server: WebhookServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        payload = self.rfile.read(length)
        if self.path == "/hang":
            self.server.release.wait(timeout=30)
            return  # the client gave up long ago: close without an answer
        if self.path.startswith("/status/"):
            self.send_response(int(self.path.rsplit("/", 1)[1]))
            body = b"refused by test server"
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            body = b""
        else:
            self.server.received.append(
                {
                    "path": self.path,
                    "content_type": self.headers["Content-Type"],
                    "json": json.loads(payload),
                }
            )
            self.send_response(200)
            body = b"ok"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


# -- a real SMTP server --------------------------------------------------------------


@dataclass
class SmtpRecorder:
    """Accepts mail except for ``perm-*`` (550) and ``temp-*`` (450) recipients."""

    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("perm-"):
            return "550 5.1.1 No such user"
        if address.startswith("temp-"):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    recorder: SmtpRecorder


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    recorder = SmtpRecorder()
    port = closed_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(port, recorder)
    controller.stop()


@pytest.fixture
def hang_up_port() -> Iterator[int]:
    """A port whose server accepts each connection and closes it without a greeting."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    listener.close()
    thread.join(timeout=10)


# -- the alert ------------------------------------------------------------------------


def test_subject_is_severity_and_title_on_one_line() -> None:
    """The subject is ``[SEVERITY] title``, with line breaks folded (no header injection)."""
    assert make_alert().subject == "[CRITICAL] Task dead-lettered"
    assert make_alert(title="two\r\nlines\nBcc: x@y").subject == "[CRITICAL] two lines Bcc: x@y"


def test_created_at_defaults_to_now_in_utc() -> None:
    """``created_at`` is ISO-8601 UTC, taken when the alert is made."""
    before = datetime.now(UTC)
    created = datetime.fromisoformat(make_alert().created_at)
    assert created.utcoffset() == timedelta(0)
    assert before <= created <= datetime.now(UTC)


@pytest.mark.parametrize("severity", ["CRITICAL", "urgent", ""])
def test_unknown_severity_is_refused(severity: str) -> None:
    """Only low/medium/high/critical are severities."""
    with pytest.raises(ValueError, match="severity"):
        make_alert(severity=severity)


def test_details_must_be_json_serializable() -> None:
    """An alert whose details a webhook could not carry is refused when it is made."""
    with pytest.raises(ValueError, match="JSON"):
        make_alert(details={"when": datetime.now(UTC)})


def test_text_body_carries_every_fact() -> None:
    """The e-mail text has the body, severity, source, time and the details as JSON."""
    alert = make_alert()
    text = alert.as_text()
    assert text.startswith(alert.body)
    for fact in ("critical", alert.source, alert.created_at, '"task_id": "abc"'):
        assert fact in text


# -- configuration --------------------------------------------------------------------


def test_settings_read_every_alert_variable() -> None:
    """Every ALERT_*/SMTP_* variable lands in its field; recipients are split and trimmed."""
    config = load_settings(
        {
            "ALERT_WEBHOOK_URL": "https://hooks.example.com/x",
            "SMTP_HOST": "mailsink",
            "SMTP_PORT": "2525",
            "ALERT_EMAIL_FROM": "alerts@example.com",
            "ALERT_EMAIL_TO": " ops@example.com, ,oncall@example.com ",
        }
    ).alerts
    assert config == AlertConfig(
        webhook_url="https://hooks.example.com/x",
        smtp_host="mailsink",
        smtp_port=2525,
        sender="alerts@example.com",
        recipients=("ops@example.com", "oncall@example.com"),
    )
    assert config.channels == ("webhook", "email")


def test_config_with_empty_values_has_no_channel() -> None:
    """Empty variables (compose's ``${X:-}``) count as unset: defaults, no channel."""
    config = load_settings({"ALERT_WEBHOOK_URL": "", "SMTP_HOST": "", "SMTP_PORT": ""}).alerts
    assert config == AlertConfig()
    assert config.channels == ()


def test_smtp_host_without_recipients_enables_no_email() -> None:
    """SMTP_HOST alone (shared with the notification tasks) does not turn on e-mail alerts."""
    assert load_settings({"SMTP_HOST": "mailsink"}).alerts.channels == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SMTP_HOST": "m", "SMTP_PORT": "smtp"}, "SMTP_PORT must be an integer"),
        ({"SMTP_HOST": "m", "SMTP_PORT": "70000"}, "SMTP_PORT must be a TCP port"),
        ({"ALERT_WEBHOOK_URL": "ftp://h/x"}, "http"),
        ({"ALERT_EMAIL_TO": "ops@example.com"}, "SMTP_HOST is not"),
    ],
)
def test_config_refuses_what_cannot_work(env: dict[str, str], message: str) -> None:
    """A configuration that could never deliver fails at start-up, not at the first alert."""
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_refused_webhook_url_is_shown_without_its_token() -> None:
    """The start-up error for a bad ALERT_WEBHOOK_URL names the host, never the path's token."""
    with pytest.raises(SettingsError, match="ALERT_WEBHOOK_URL") as refused:
        load_settings({"ALERT_WEBHOOK_URL": f"ftp://hooks.example.com/{SECRET}"})
    assert SECRET not in str(refused.value)


def test_redact_url_keeps_only_scheme_host_port() -> None:
    """The token in a webhook path never reaches logs."""
    assert redact_url(f"https://hooks.example.com:8443/services/{SECRET}?k=v") == (
        "https://hooks.example.com:8443"
    )


# -- webhook --------------------------------------------------------------------------


def test_webhook_posts_the_alert_as_json(webhook: WebhookServer) -> None:
    """A 2xx answer means delivered; the receiver gets every field as JSON."""
    alert = make_alert()
    send_webhook(alert, webhook.url("/ok"))
    [request] = webhook.received
    assert request["content_type"] == "application/json"
    assert request["json"] == {
        "title": alert.title,
        "body": alert.body,
        "severity": "critical",
        "source": alert.source,
        "details": alert.details,
        "created_at": alert.created_at,
    }


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_webhook_4xx_is_a_bad_request(webhook: WebhookServer, status: int) -> None:
    """A 4xx answer is permanent: sending the same alert again cannot help."""
    with pytest.raises(BadRequestUpstream, match=str(status)):
        send_webhook(make_alert(), webhook.url(f"/status/{status}"))


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_webhook_5xx_and_throttling_are_unavailable(webhook: WebhookServer, status: int) -> None:
    """5xx, 408 and 429 are transient: a later retry may get through."""
    with pytest.raises(UpstreamUnavailable, match=str(status)):
        send_webhook(make_alert(), webhook.url(f"/status/{status}"))


def test_webhook_redirect_is_not_followed(webhook: WebhookServer) -> None:
    """A 302 is an error, not a delivery (following it would turn the POST into a GET)."""
    with pytest.raises(BadRequestUpstream, match="302"):
        send_webhook(make_alert(), webhook.url("/redirect"))
    assert webhook.received == []


def test_webhook_connection_refused_is_unavailable_and_redacted() -> None:
    """Nothing listening is transient, and the error does not leak the URL's token."""
    with pytest.raises(UpstreamUnavailable) as caught:
        send_webhook(make_alert(), f"http://127.0.0.1:{closed_port()}/hook/{SECRET}")
    assert "s3cr3t" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_webhook_timeout_is_unavailable(webhook: WebhookServer) -> None:
    """A receiver that does not answer within the read timeout is transient."""
    with pytest.raises(UpstreamUnavailable, match="timed out"):
        send_webhook(make_alert(), webhook.url("/hang"), timeout=(3.05, 0.2))


def test_unusable_webhook_url_is_a_bad_request() -> None:
    """A URL requests cannot even send to is a permanent error."""
    with pytest.raises(BadRequestUpstream, match="unusable"):
        send_webhook(make_alert(), "http://")


# -- e-mail ---------------------------------------------------------------------------


def test_email_is_sent_as_plain_text(smtp_server: SmtpServer) -> None:
    """The SMTP server gets the sender, every recipient and a ``[SEVERITY] title`` subject."""
    send_email(
        make_alert(), "127.0.0.1", smtp_server.port, "alerts@example.com", ["a@x.org", "b@x.org"]
    )
    [envelope] = smtp_server.recorder.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["a@x.org", "b@x.org"]
    raw = envelope.content
    assert isinstance(raw, bytes)
    assert b"Subject: [CRITICAL] Task dead-lettered" in raw
    assert b"Content-Type: text/plain" in raw


def test_email_permanently_refused_recipient_is_a_bad_request(smtp_server: SmtpServer) -> None:
    """A 5xx refusal of every recipient is permanent."""
    with pytest.raises(BadRequestUpstream, match="550"):
        send_email(make_alert(), "127.0.0.1", smtp_server.port, "a@x.org", ["perm-1@x.org"])


def test_email_temporarily_refused_recipient_is_unavailable(smtp_server: SmtpServer) -> None:
    """A 4xx refusal is transient: the server asks to try later."""
    with pytest.raises(UpstreamUnavailable, match="450"):
        send_email(make_alert(), "127.0.0.1", smtp_server.port, "a@x.org", ["temp-1@x.org"])


def test_email_partly_refused_is_delivered_and_logged(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Accepted for some recipients means sent: no error (a retry would duplicate it)."""
    send_email(make_alert(), "127.0.0.1", smtp_server.port, "a@x.org", ["ok@x.org", "perm-1@x.org"])
    assert smtp_server.recorder.envelopes[0].rcpt_tos == ["ok@x.org"]
    assert "perm-1@x.org" in caplog.text


def test_email_connection_refused_is_unavailable() -> None:
    """No SMTP server listening is transient."""
    with pytest.raises(UpstreamUnavailable):
        send_email(make_alert(), "127.0.0.1", closed_port(), "a@x.org", ["b@x.org"], timeout=5)


def test_email_server_hanging_up_is_unavailable(hang_up_port: int) -> None:
    """A server that drops the connection before greeting is transient."""
    with pytest.raises(UpstreamUnavailable):
        send_email(make_alert(), "127.0.0.1", hang_up_port, "a@x.org", ["b@x.org"], timeout=5)


# -- deliver --------------------------------------------------------------------------


def test_deliver_uses_every_configured_channel(
    webhook: WebhookServer, smtp_server: SmtpServer
) -> None:
    """Both channels configured and up: both get the alert."""
    config = AlertConfig(
        webhook_url=webhook.url("/ok"),
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        recipients=("ops@x.org",),
    )
    assert deliver(make_alert(), config) == ["webhook", "email"]
    assert len(webhook.received) == 1 and len(smtp_server.recorder.envelopes) == 1


def test_deliver_succeeds_when_one_channel_works(
    webhook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    """E-mail down but webhook up: delivered, and the e-mail failure is logged as an error."""
    config = AlertConfig(
        webhook_url=webhook.url("/ok"),
        smtp_host="127.0.0.1",
        smtp_port=closed_port(),
        recipients=("ops@x.org",),
    )
    with caplog.at_level(logging.ERROR, logger="celeryref.alerts.delivery"):
        assert deliver(make_alert(), config) == ["webhook"]
    assert "email channel failed" in caplog.text


def test_deliver_raises_the_first_error_when_every_channel_fails(webhook: WebhookServer) -> None:
    """Webhook 404 and e-mail down: the webhook's (first) error is raised."""
    config = AlertConfig(
        webhook_url=webhook.url("/status/404"),
        smtp_host="127.0.0.1",
        smtp_port=closed_port(),
        recipients=("ops@x.org",),
    )
    with pytest.raises(BadRequestUpstream, match="404"):
        deliver(make_alert(), config)


def test_deliver_without_channels_warns(caplog: pytest.LogCaptureFixture) -> None:
    """No channel configured: nothing sent, ``[]`` returned, and a warning says so."""
    with caplog.at_level(logging.WARNING, logger="celeryref.alerts.delivery"):
        assert deliver(make_alert(), AlertConfig()) == []
    assert "no alert channel configured" in caplog.text
