"""Tasks of the ``io_intensive`` queue: a thread pool with high concurrency."""

from __future__ import annotations

import hashlib
from typing import Any

import requests

from celeryref.celery_app import app
from celeryref.errors import BadRequestUpstream, InvalidArguments, UpstreamUnavailable

#: Seconds to connect and to wait for the first byte; a request never hangs.
HTTP_TIMEOUT = (3.05, 15.0)
#: Responses larger than this (bytes) are cut off and flagged.
MAX_BODY_BYTES = 10 * 1024 * 1024


def classify_response(status: int, url: str) -> None:
    """Raise the error that ``status`` means for a retry policy; 2xx/3xx pass."""
    if status >= 500:
        raise UpstreamUnavailable(f"{url} answered {status}")
    if status >= 400:
        raise BadRequestUpstream(f"{url} answered {status}")


def fetch(url: str) -> dict[str, Any]:
    """GET ``url``; summarize the body. Connection errors and 5xx are transient."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArguments(f"url must be an http(s) URL, got {url!r}")
    try:
        with requests.get(url, timeout=HTTP_TIMEOUT, stream=True) as response:
            classify_response(response.status_code, url)
            body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise UpstreamUnavailable(f"{url}: {exc}") from exc
    return {
        "url": url,
        "status": response.status_code,
        "bytes": min(len(body), MAX_BODY_BYTES),
        "truncated": len(body) > MAX_BODY_BYTES,
        "sha256": hashlib.sha256(body[:MAX_BODY_BYTES]).hexdigest(),
    }


@app.task(
    autoretry_for=(UpstreamUnavailable,),
    retry_backoff=1,  # first retry after ~1 s, doubling
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def fetch_url(url: str) -> dict[str, Any]:
    """Fetch ``url``; retried with capped, jittered exponential backoff on transient errors."""
    return fetch(url)
