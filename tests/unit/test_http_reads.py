"""Bounded, streamed reads in celeryref/adapters/http.py, against a real local server.

The server (tests/support/upstream.py) listens on 127.0.0.1, reached as "localhost",
which these tests allowlist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import urllib3

from celeryref.adapters import http
from celeryref.adapters.egress import EgressPolicy
from celeryref.errors import InvalidArguments, UpstreamUnavailable, classify
from tests.support.upstream import UpstreamServer, upstream

LOCALHOST = EgressPolicy.from_entries(["localhost"])
CAP = 100_000


@pytest.fixture
def server() -> Iterator[UpstreamServer]:
    with upstream() as s:
        yield s


def test_an_endless_body_is_cut_at_the_cap_without_reading_on(
    server: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server streams forever: the call returns at once with MAX_BODY_BYTES of text,
    having read at most the cap plus one chunk, and closes the connection."""
    read: list[int] = []
    real_iter_content = requests.Response.iter_content

    def counting(self: requests.Response, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for chunk in real_iter_content(self, *args, **kwargs):
            read.append(len(chunk))
            yield chunk

    monkeypatch.setattr(requests.Response, "iter_content", counting)
    outcome: dict[str, Any] = {}

    def call() -> None:
        url = f"http://localhost:{server.port}/endless"
        outcome["answer"] = http.resilient_api_call("GET", url, policy=LOCALHOST)

    started = time.monotonic()
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(timeout=10)  # a whole-body read never returns: the server never stops

    assert not caller.is_alive(), "the call is still reading an endless body"
    assert time.monotonic() - started < 5
    assert len(outcome["answer"]["text"]) == http.MAX_BODY_BYTES
    assert sum(read) <= http.MAX_BODY_BYTES + http.CHUNK_BYTES
    assert server.client_left.wait(timeout=5)


def test_a_declared_body_over_the_cap_is_refused_before_reading(server: UpstreamServer) -> None:
    """``Content-Length: 10**12`` (and no body yet): refused at once, permanently."""
    started = time.monotonic()
    with pytest.raises(InvalidArguments, match="more than the 10485760-byte cap"):
        http.request("GET", f"http://localhost:{server.port}/huge", policy=LOCALHOST)
    assert time.monotonic() - started < 2


def test_a_fetch_summarizes_at_most_the_cap(server: UpstreamServer) -> None:
    answer = http.request(
        "GET", f"http://localhost:{server.port}/endless", max_bytes=CAP, policy=LOCALHOST
    )
    assert (len(answer.body), answer.truncated) == (CAP, True)
    ok = http.request("GET", f"http://localhost:{server.port}/ok", policy=LOCALHOST)
    assert (ok.body, ok.truncated) == (b'{"ok": true}', False)


def test_a_body_cut_off_mid_stream_is_transient(server: UpstreamServer) -> None:
    """Declared 1000 bytes, sent 10, closed: a read/protocol error, retried later."""
    with pytest.raises(UpstreamUnavailable, match="/short"):
        http.request("GET", f"http://localhost:{server.port}/short", policy=LOCALHOST)


def test_a_stalled_body_is_a_transient_read_timeout(server: UpstreamServer) -> None:
    """Headers, then silence past the read timeout (``/huge`` under a larger cap)."""
    with pytest.raises(UpstreamUnavailable, match="timed out"):
        http.request(
            "GET",
            f"http://localhost:{server.port}/huge",
            timeout=(2, 0.5),
            max_bytes=10**13,
            policy=LOCALHOST,
        )


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ChunkedEncodingError("cut"),
        requests.exceptions.ContentDecodingError("bad gzip"),
        urllib3.exceptions.ProtocolError("Connection broken"),
        urllib3.exceptions.ReadTimeoutError(None, "http://x", "read timed out"),  # type: ignore[arg-type]
    ],
    ids=lambda e: type(e).__name__,
)
def test_urllib3_read_and_protocol_errors_are_transient(exc: Exception) -> None:
    """Wherever they surface (a task reading a response itself), they are retried."""
    assert classify(exc).transient
    assert isinstance(exc, http.TRANSIENT_ERRORS)
