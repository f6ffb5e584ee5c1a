"""One HTTP status table (``errors.is_transient_http_status``) and the places that use it,
plus the one not-found error."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from celeryref.adapters.http import classify_response
from celeryref.alerts import channels
from celeryref.alerts.model import Alert
from celeryref.errors import (
    BadRequestUpstream,
    InvalidArguments,
    NotFound,
    PermanentError,
    UpstreamUnavailable,
    classify,
    http_status_error,
    is_transient_http_status,
)

#: status -> transient? The whole rule: 5xx, 408 and 429 may work later; nothing else will.
TABLE = {
    301: False,
    302: False,
    304: False,
    307: False,
    400: False,
    401: False,
    403: False,
    404: False,
    409: False,
    410: False,
    422: False,
    408: True,
    429: True,
    500: True,
    502: True,
    503: True,
    504: True,
    599: True,
}


@pytest.mark.parametrize(("status", "transient"), TABLE.items())
def test_the_status_table(status: int, transient: bool) -> None:
    assert is_transient_http_status(status) is transient
    error = http_status_error(status, f"answered {status}")
    assert type(error) is (UpstreamUnavailable if transient else BadRequestUpstream)
    assert str(error) == f"answered {status}"


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = b"body"
    return response


@pytest.mark.parametrize("status", [s for s in TABLE if s >= 400])
def test_classify_of_raise_for_status_follows_the_table(status: int) -> None:
    """An ``HTTPError`` a task let through is retried exactly when the table says so."""
    assert classify(requests.HTTPError(response=_response(status))).transient is TABLE[status]


@pytest.mark.parametrize("status", TABLE)
def test_task_requests_follow_the_table_and_pass_redirects(status: int) -> None:
    """``classify_response``: errors as the table says for 4xx/5xx; a 3xx is not an error."""
    if status < 400:
        classify_response(status, "http://x")
        return
    expected = UpstreamUnavailable if TABLE[status] else BadRequestUpstream
    with pytest.raises(expected, match=f"http://x answered {status}"):
        classify_response(status, "http://x")


@pytest.mark.parametrize("status", TABLE)
def test_the_webhook_follows_the_table_and_fails_redirects(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``send_webhook``: as the table says; a redirect (not followed) is permanent, with a hint."""

    def post(url: str, **kwargs: Any) -> requests.Response:
        return _response(status)

    monkeypatch.setattr(channels.requests, "post", post)
    alert = Alert(title="t", body="b", severity="critical", source="tests")
    expected = UpstreamUnavailable if TABLE[status] else BadRequestUpstream
    with pytest.raises(expected, match=str(status)) as caught:
        channels.send_webhook(alert, "http://hooks.example/secret")
    assert ("final URL" in str(caught.value)) is (status < 400)


def test_not_found_is_one_permanent_error_of_its_own() -> None:
    """Not an ``InvalidArguments`` (422), a ``LookupError``; a task that meets one is not
    retried and is dead-lettered as ``not_found``."""
    exc = NotFound("no dead letter with id 9")
    assert isinstance(exc, PermanentError) and isinstance(exc, LookupError)
    assert not isinstance(exc, InvalidArguments)
    assert (classify(exc).transient, classify(exc).category) == (False, "not_found")
