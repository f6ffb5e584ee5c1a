"""Resilient HTTP calls with ``requests``: always a timeout, errors classified for retry.

:func:`resilient_api_call` makes ONE attempt and raises
:class:`~celeryref.errors.UpstreamUnavailable` (transient: connection errors,
timeouts, 5xx) or :class:`~celeryref.errors.BadRequestUpstream` (permanent: 4xx).
Retrying is the task's retry policy's job (:mod:`celeryref.reliability.retry`), so a call is
never retried twice over by nested loops.
"""

from __future__ import annotations

from typing import Any

import requests

from celeryref.errors import InvalidArguments, UpstreamUnavailable, http_status_error

#: Seconds to connect and to wait for the first byte; a request never hangs.
DEFAULT_TIMEOUT = (3.05, 15.0)
#: Methods a task may ask for.
ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
#: Response bodies larger than this (bytes) are cut off.
MAX_BODY_BYTES = 10 * 1024 * 1024


def classify_response(status: int, url: str) -> None:
    """Raise the error that ``status`` means for a retry policy; 2xx/3xx pass.

    5xx, 408 (timeout) and 429 (rate limited) are transient; other 4xx permanent
    (:func:`celeryref.errors.http_status_error`).
    """
    if status >= 400:
        raise http_status_error(status, f"{url} answered {status}")


def check_url(url: object) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArguments(f"url must be an http(s) URL, got {url!r}")
    return url


def resilient_api_call(
    method: str,
    url: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """One HTTP attempt; returns ``{"status", "json"}`` or ``{"status", "text"}``."""
    method = method.upper()
    if method not in ALLOWED_METHODS:
        raise InvalidArguments(f"method must be one of {sorted(ALLOWED_METHODS)}, got {method!r}")
    check_url(url)
    try:
        response = requests.request(
            method, url, json=json, params=params, headers=headers, timeout=timeout
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise UpstreamUnavailable(f"{method} {url}: {exc}") from exc
    classify_response(response.status_code, url)
    body = response.content[:MAX_BODY_BYTES]
    if response.headers.get("content-type", "").startswith("application/json"):
        return {"status": response.status_code, "json": response.json()}
    return {"status": response.status_code, "text": body.decode(errors="replace")}
