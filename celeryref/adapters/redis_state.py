"""The Redis client for application state (locks, delivery counts, breakers).

It uses its own database (``REDIS_STATE_DB``), apart from the broker's queues and
the results. redis-py's connection pool is fork-aware, so one module-level client
serves every pool process.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from celeryref.settings import settings

#: Prefix of every key the application writes.
KEY_PREFIX = "celeryref:"


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    """The process-wide client for :data:`~celeryref.settings.Settings.state_redis_url`."""
    return redis.Redis.from_url(
        settings.state_redis_url,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
        **settings.redis_ssl_options,
    )


@lru_cache(maxsize=1)
def results_client() -> redis.Redis:
    """The process-wide client for the result database (``result_backend_url``): the
    delivery counts live there (:mod:`celeryref.reliability.delivery_guard`)."""
    return redis.Redis.from_url(
        settings.result_backend_url,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
        **settings.redis_ssl_options,
    )


def key(*parts: object) -> str:
    """A namespaced key: ``key("beat", "lock") == "celeryref:beat:lock"``."""
    return KEY_PREFIX + ":".join(str(p) for p in parts)
