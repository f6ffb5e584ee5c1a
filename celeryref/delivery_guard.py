"""Cap redeliveries, so a task that kills its worker cannot loop forever.

``task_acks_late`` + ``task_reject_on_worker_lost`` put a task back on the queue
when its pool process dies (OOM kill, segfault, SIGKILL). That is right for a
process that died by accident and wrong for a message that kills every process
that runs it: each delivery is counted in Redis per (task id, retry number), and
a delivery past ``MAX_DELIVERIES`` is refused instead of run.
"""

from __future__ import annotations

from celeryref import redis_state
from celeryref.settings import settings


def delivery_key(task_id: str, retries: int) -> str:
    return redis_state.key("deliveries", task_id, retries)


def record_delivery(task_id: str, retries: int) -> int:
    """Count one delivery of attempt ``retries`` of ``task_id``; return the count.

    The counter outlives every redelivery path (visibility timeout included) and
    then expires by itself.
    """
    key = delivery_key(task_id, retries)
    pipe = redis_state.client().pipeline()
    pipe.incr(key)
    pipe.expire(key, settings.broker_visibility_timeout * (settings.max_deliveries + 1))
    count, _ = pipe.execute()
    return int(count)


def is_redelivery_loop(deliveries: int) -> bool:
    """``True`` when a message has been delivered more often than allowed."""
    return deliveries > settings.max_deliveries
