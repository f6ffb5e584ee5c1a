"""The mail sink as the deployment runs it: ``python -m devtools.mailsink`` in its own
process, fed over real SMTP by :func:`celeryref.alerts.channels.send_email`, read back over HTTP.

Needs no Redis or Postgres.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celeryref.alerts.channels import send_email
from celeryref.alerts.model import Alert
from tests.conftest import ROOT, wait_for

#: Seconds the sink may take to start answering /healthz, or to exit after SIGTERM.
DEADLINE = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Sink:
    process: subprocess.Popen[bytes]
    smtp_port: int
    http_port: int
    log: Path

    def request(self, method: str, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        req = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as response:  # noqa: S310 - fixed http URL
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def messages(self, query: str = "") -> list[dict[str, Any]]:
        status, body = self.request("GET", f"/messages{query}")
        assert status == 200
        assert isinstance(body, list)
        return body

    def mail(self, title: str, recipients: list[str]) -> None:
        alert = Alert(
            title=title,
            body="worker-cpu lost its Postgres pool.",
            severity="high",
            source="celeryref.tasks.cpu_intensive.report",
            details={"task_id": "t-1", "retries": 3},
        )
        send_email(alert, "127.0.0.1", self.smtp_port, "celeryref@localhost", recipients)


@pytest.fixture
def start_sink(tmp_path: Path) -> Iterator[Callable[..., Sink]]:
    """Start ``python -m devtools.mailsink`` on free loopback ports; stop it afterwards."""
    started: list[Sink] = []

    def start(max_messages: int = 1000) -> Sink:
        log = tmp_path / f"mailsink-{len(started)}.log"
        smtp_port, http_port = free_port(), free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devtools.mailsink",
                    "--host",
                    "127.0.0.1",
                    "--smtp-port",
                    str(smtp_port),
                    "--http-port",
                    str(http_port),
                    "--max-messages",
                    str(max_messages),
                ],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        sink = Sink(process, smtp_port, http_port, log)
        started.append(sink)

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"mailsink exited with {process.returncode}:\n{log.read_text()}")
            try:
                return sink.request("GET", "/healthz")[0] == 200
            except OSError:
                return False

        wait_for(healthy, DEADLINE, "mailsink /healthz answering 200")
        return sink

    yield start
    for sink in started:
        if sink.process.poll() is None:
            sink.process.terminate()
            try:
                sink.process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                sink.process.kill()
                sink.process.wait(timeout=DEADLINE)


def test_alert_email_is_readable_over_http(start_sink: Callable[..., Sink]) -> None:
    """An alert sent with send_email comes back from GET /messages with every field."""
    sink = start_sink()
    sink.mail("Report task dead-lettered", ["ops@example.com", "oncall@example.com"])

    [message] = sink.messages()
    assert message["mail_from"] == "celeryref@localhost"
    assert message["rcpt_tos"] == ["ops@example.com", "oncall@example.com"]
    assert message["subject"] == "[HIGH] Report task dead-lettered"
    assert message["body"].startswith("worker-cpu lost its Postgres pool.\n\nSeverity:   high\n")
    assert '"task_id": "t-1"' in message["body"]
    assert message["headers"]["X-Alert-Severity"] == ["high"]
    assert message["received_at"].endswith("+00:00")


def test_messages_filter_by_recipient(start_sink: Callable[..., Sink]) -> None:
    """GET /messages?to=ADDR returns only mail whose envelope includes ADDR (any case)."""
    sink = start_sink()
    sink.mail("for ops", ["ops@example.com"])
    sink.mail("for dev", ["dev@example.com"])
    sink.mail("for both", ["dev@example.com", "ops@example.com"])

    subjects = [m["subject"] for m in sink.messages("?to=OPS@example.com")]
    assert subjects == ["[HIGH] for ops", "[HIGH] for both"]
    assert sink.messages("?to=nobody@example.com") == []


def test_only_the_newest_messages_are_kept(start_sink: Callable[..., Sink]) -> None:
    """With --max-messages 3, five messages leave the last three, in arrival order."""
    sink = start_sink(max_messages=3)
    for n in range(5):
        sink.mail(f"alert {n}", ["ops@example.com"])

    messages = sink.messages()
    assert [m["subject"] for m in messages] == [
        "[HIGH] alert 2",
        "[HIGH] alert 3",
        "[HIGH] alert 4",
    ]
    assert [m["id"] for m in messages] == [3, 4, 5]


def test_delete_clears_every_message(start_sink: Callable[..., Sink]) -> None:
    """DELETE /messages empties the store and says how many it dropped; new mail still lands."""
    sink = start_sink()
    sink.mail("one", ["ops@example.com"])
    sink.mail("two", ["ops@example.com"])

    assert sink.request("DELETE", "/messages") == (200, {"deleted": 2})
    assert sink.messages() == []
    sink.mail("three", ["ops@example.com"])
    assert [m["subject"] for m in sink.messages()] == ["[HIGH] three"]


def test_unknown_route_is_404(start_sink: Callable[..., Sink]) -> None:
    """Only /messages and /healthz exist."""
    status, body = start_sink().request("GET", "/nope")
    assert status == 404
    assert "no route" in body["error"]


def test_sigterm_exits_zero(start_sink: Callable[..., Sink]) -> None:
    """SIGTERM (what `docker compose stop` sends through tini) stops the sink with status 0."""
    sink = start_sink()
    sink.process.send_signal(signal.SIGTERM)
    assert sink.process.wait(timeout=DEADLINE) == 0
    assert "mailsink stopped" in sink.log.read_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sink.smtp_port), timeout=2).close()
