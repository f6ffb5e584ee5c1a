"""The scaling signal: how many messages wait in each queue (SPEC F5).

On Redis a queue is one list per priority step (:func:`celeryref.queues.redis_keys`);
its depth is the sum of their lengths. Messages already reserved by a worker
(prefetched or running under ``acks_late``) are not in these lists.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from celeryref import queues
from celeryref.settings import settings


@lru_cache(maxsize=1)
def broker_client() -> redis.Redis:
    """A client of the broker's database (read-only use)."""
    return redis.Redis.from_url(
        settings.broker_url,
        socket_timeout=5,
        socket_connect_timeout=5,
        **settings.redis_ssl_options,
    )


def queue_depths(client: redis.Redis | None = None) -> dict[str, int]:
    """Waiting messages per queue, all priorities summed, in one round trip."""
    client = client or broker_client()
    pipe = client.pipeline(transaction=False)
    for queue in queues.ALL_QUEUES:
        for key in queues.redis_keys(queue):
            pipe.llen(key)
    lengths = iter(pipe.execute())
    steps = len(queues.PRIORITY_STEPS)
    return {queue: sum(next(lengths) for _ in range(steps)) for queue in queues.ALL_QUEUES}
