"""Tasks of the ``io_intensive`` queue: a thread pool with high concurrency.

Every network call here takes its timeouts from :func:`call_timeouts`: never longer
than the time left before the task's soft limit, and refused once it has passed. A
thread cannot be killed; this is how the pool's time limits reach the I/O (F24,
:mod:`celeryref.upstream.thread_pool`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from celeryref.adapters import http
from celeryref.adapters.http import DEFAULT_TIMEOUT, resilient_api_call
from celeryref.celery_app import app
from celeryref.reliability import time_budget
from celeryref.reliability.circuit_breaker import CircuitBreaker
from celeryref.reliability.fallback import FallbackCache, call_with_fallback
from celeryref.reliability.retry import RetryPolicy

#: Network calls: ~1 s, 2 s, 4 s ... capped at 60 s, five retries.
NETWORK_POLICY = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=60.0)


def call_timeouts() -> tuple[float, float]:
    """``(connect, read)`` seconds for one HTTP call: ``DEFAULT_TIMEOUT``, shortened to
    the time left before the soft limit; ``SoftTimeLimitExceeded`` once it has passed."""
    connect, read = DEFAULT_TIMEOUT
    return time_budget.call_timeout(connect), time_budget.call_timeout(read)


def fetch(url: str) -> dict[str, Any]:
    """GET ``url`` (egress-checked, :func:`celeryref.adapters.http.request`); summarize
    at most ``MAX_BODY_BYTES`` of the body. Connection errors and 5xx are transient."""
    answer = http.request("GET", url, timeout=call_timeouts())
    return {
        "url": url,
        "status": answer.status,
        "bytes": len(answer.body),
        "truncated": answer.truncated,
        "sha256": hashlib.sha256(answer.body).hexdigest(),
    }


@app.task(retry_policy=NETWORK_POLICY)
def fetch_url(url: str) -> dict[str, Any]:
    """Fetch ``url``; transient failures are retried with capped, jittered backoff."""
    return fetch(url)


@app.task(retry_policy=NETWORK_POLICY)
def call_api(method: str, url: str, json: Any = None) -> dict[str, Any]:
    """One resilient HTTP call (timeouts always; 5xx/connection errors retried; 4xx not)."""
    return resilient_api_call(method, url, json=json, timeout=call_timeouts())


@app.task(retry_policy=NETWORK_POLICY)
def external_api_with_circuit_breaker(name: str, url: str) -> dict[str, Any]:
    """GET ``url`` through the shared breaker ``name``; serve the last good answer when open.

    The result says whether it is ``fallback`` (cached) data.
    """
    breaker = CircuitBreaker(name)
    cache = FallbackCache(name)
    timeouts = call_timeouts()  # before the breaker: a spent budget is not an upstream failure
    value, from_cache = call_with_fallback(
        breaker, lambda: resilient_api_call("GET", url, timeout=timeouts), cache
    )
    return {"response": value, "fallback": from_cache}
