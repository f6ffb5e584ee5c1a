"""HTTP calls a task makes to a URL a client chose: checked, bounded, errors classified.

:func:`request` makes ONE attempt through the egress policy
(:mod:`celeryref.adapters.egress`: internal hosts refused, every redirect hop checked
again, the connection pinned to the checked address), reads at most ``max_bytes`` of
the body in chunks (a larger ``Content-Length`` is refused before reading), and raises

- :class:`~celeryref.errors.UpstreamUnavailable` (transient): connection errors,
  timeouts, a body cut off mid-stream (:data:`TRANSIENT_ERRORS`), 5xx, 408, 429;
- :class:`~celeryref.errors.BadRequestUpstream` (permanent): other 4xx, a redirect loop;
- :class:`~celeryref.errors.EgressRefused` / :class:`~celeryref.errors.InvalidArguments`
  (permanent): a refused URL, a method not allowed, a declared body over the cap.

Retrying is the task's retry policy's job (:mod:`celeryref.reliability.retry`), so a call is
never retried twice over by nested loops.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from celeryref.adapters.egress import EgressPolicy, session
from celeryref.errors import (
    BadRequestUpstream,
    InvalidArguments,
    UpstreamUnavailable,
    http_status_error,
)

#: Seconds to connect and to wait for each read; a request never hangs.
DEFAULT_TIMEOUT = (3.05, 15.0)
#: Methods a task may ask for.
ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
#: Response bodies larger than this (bytes) are cut off (refused if declared larger).
MAX_BODY_BYTES = 10 * 1024 * 1024
#: Bytes read per chunk: a capped read stops at most this far past the cap.
CHUNK_BYTES = 64 * 1024
#: Redirects followed (each hop checked by the egress policy) before giving up.
MAX_REDIRECTS = 5
#: Failures to connect or to read a whole response that a later attempt may not meet.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
)


@dataclass(frozen=True)
class Response:
    """A successful answer: at most ``max_bytes`` of its body."""

    #: Where the answer came from (after redirects).
    url: str
    status: int
    content_type: str
    body: bytes
    #: The body went on past ``max_bytes`` (and was not read further).
    truncated: bool


def classify_response(status: int, url: str) -> None:
    """Raise the error that ``status`` means for a retry policy; 2xx/3xx pass.

    5xx, 408 (timeout) and 429 (rate limited) are transient; other 4xx permanent
    (:func:`celeryref.errors.http_status_error`).
    """
    if status >= 400:
        raise http_status_error(status, f"{url} answered {status}")


def check_url(url: object, policy: EgressPolicy | None = None) -> str:
    """``url`` if it is an http(s) URL the egress policy does not refuse outright (scheme,
    service name, internal IP literal); the addresses of a name are checked on connect."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArguments(f"url must be an http(s) URL, got {url!r}")
    (policy or EgressPolicy.from_settings()).check_url(url)
    return url


def request(
    method: str,
    url: str,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    max_bytes: int = MAX_BODY_BYTES,
    policy: EgressPolicy | None = None,
) -> Response:
    """One checked attempt, following up to :data:`MAX_REDIRECTS` redirects."""
    method = method.upper()
    if method not in ALLOWED_METHODS:
        raise InvalidArguments(f"method must be one of {sorted(ALLOWED_METHODS)}, got {method!r}")
    policy = policy or EgressPolicy.from_settings()
    with session(policy) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, policy)
            try:
                with client.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=timeout,
                    stream=True,
                    allow_redirects=False,
                ) as response:
                    if not response.is_redirect:
                        classify_response(response.status_code, url)
                        body = _read_capped(response, method, url, max_bytes)
                        return Response(
                            url=url,
                            status=response.status_code,
                            content_type=response.headers.get("content-type", ""),
                            body=body[:max_bytes],
                            truncated=len(body) > max_bytes,
                        )
                    target = urljoin(url, client.get_redirect_target(response) or "")
            except TRANSIENT_ERRORS as exc:
                raise UpstreamUnavailable(f"{method} {url}: {exc}") from exc
            method, json = _redirected_method(response.status_code, method, json)
            if urlsplit(target)[:2] != urlsplit(url)[:2]:
                headers = None  # never carry credentials to another origin
            url, params = target, None  # the Location holds its own query
    raise BadRequestUpstream(f"{url}: more than {MAX_REDIRECTS} redirects")


def _redirected_method(status: int, method: str, body: Any) -> tuple[str, Any]:
    """What a browser (and requests) sends after ``status``: 303 (and 301/302 after a
    POST) become a GET without body; 307/308 repeat the request."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return "GET", None
    return method, body


def _read_capped(response: requests.Response, method: str, url: str, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of the body, read in :data:`CHUNK_BYTES` chunks."""
    declared = response.headers.get("content-length", "")
    if method != "HEAD" and declared.isdigit() and int(declared) > max_bytes:
        raise InvalidArguments(
            f"{url}: the body is {declared} bytes, more than the {max_bytes}-byte cap"
        )
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            break
    return bytes(body)


def resilient_api_call(
    method: str,
    url: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    policy: EgressPolicy | None = None,
) -> dict[str, Any]:
    """One HTTP attempt; returns ``{"status", "json"}`` or ``{"status", "text"}`` (cut
    at :data:`MAX_BODY_BYTES`; a JSON body over it is refused, it cannot be parsed)."""
    answer = request(
        method, url, json=json, params=params, headers=headers, timeout=timeout, policy=policy
    )
    if answer.content_type.startswith("application/json"):
        if answer.truncated:
            raise InvalidArguments(f"{url}: JSON body larger than {MAX_BODY_BYTES} bytes")
        return {"status": answer.status, "json": jsonlib.loads(answer.body or b"null")}
    return {"status": answer.status, "text": answer.body.decode(errors="replace")}
