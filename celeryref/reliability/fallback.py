"""The breaker's fallback: serve the last good response while the circuit is open.

:func:`call_with_fallback` runs a call through a :class:`~.circuit_breaker.CircuitBreaker`
and keeps each fresh result in a :class:`FallbackCache` (Redis, JSON, never pickle), so every
worker process can answer from the same last good response when the call is refused or fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import redis

from celeryref.adapters import redis_state
from celeryref.errors import CircuitOpen
from celeryref.reliability.circuit_breaker import CircuitBreaker, is_counted_failure

logger = logging.getLogger(__name__)

#: Seconds a last good response stays servable by :class:`FallbackCache`.
FALLBACK_TTL = 86400.0


class FallbackCache:
    """The last good response for ``name``, as JSON (never pickle), kept ``ttl`` seconds."""

    def __init__(
        self, name: str, client: redis.Redis | None = None, ttl: float = FALLBACK_TTL
    ) -> None:
        self.client = client if client is not None else redis_state.client()
        self.key = redis_state.key("breaker", name, "last")
        self.ttl_ms = int(ttl * 1000)

    def store(self, value: Any) -> None:
        """Keep ``value``; ``TypeError`` if it is not JSON-serializable."""
        self.client.set(self.key, json.dumps(value), px=self.ttl_ms)

    def load(self) -> Any | None:
        """The stored value; ``None`` when nothing (or ``None``) is stored."""
        raw = self.client.get(self.key)
        return None if raw is None else json.loads(raw)


def call_with_fallback(
    breaker: CircuitBreaker,
    fn: Callable[[], Any],
    cache: FallbackCache,
    counts_as_failure: Callable[[BaseException], bool] = is_counted_failure,
) -> tuple[Any, bool]:
    """``(result, False)`` after caching a fresh result. ``(cached, True)`` when the
    circuit is open or ``fn`` failed in a counted way and something is cached; else the
    original exception (``CircuitOpen``, the failure, an uncounted error) is raised."""
    try:
        result = breaker.call(fn, counts_as_failure)
    except Exception as exc:
        if not (isinstance(exc, CircuitOpen) or counts_as_failure(exc)):
            raise
        cached = cache.load()
        if cached is None:
            raise
        logger.warning("circuit %r: serving the cached response (%s)", breaker.name, exc)
        return cached, True
    cache.store(result)
    return result, False
