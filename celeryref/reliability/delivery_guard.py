"""Cap redeliveries, so a task that kills its worker cannot loop forever.

``task_acks_late`` + ``task_reject_on_worker_lost`` put a task back on the queue
when its pool process dies (OOM kill, segfault, SIGKILL). That is right for a
process that died by accident and wrong for a message that kills every process
that runs it: each delivery is counted in Redis per (task id, retry number), and
a delivery past ``MAX_DELIVERIES`` is refused instead of run.

The other way Redis delivers a message twice is a countdown/ETA longer than the
visibility timeout: :func:`check_delay` refuses those at enqueue time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from celeryref.adapters import redis_state
from celeryref.errors import InvalidArguments
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


#: Seconds kept free below the visibility timeout for a delayed task to start.
ETA_MARGIN_SECONDS = 60


def max_delay() -> int:
    """The longest countdown/ETA (seconds from now) a task may be sent with."""
    return settings.broker_visibility_timeout - ETA_MARGIN_SECONDS


def check_delay(countdown: float | None, eta: datetime | str | None) -> None:
    """Refuse a countdown/ETA that outlasts the broker's visibility timeout.

    On Redis a worker holds a delayed task unacknowledged until it is due; past
    ``BROKER_VISIBILITY_TIMEOUT`` Redis hands the same message to another worker,
    and the task runs twice. Such a delay is refused at enqueue time instead (use
    beat, or a table of due jobs, for work further ahead).
    """
    limit = max_delay()
    delay: float | None = float(countdown) if countdown is not None else None
    if eta is not None:
        when = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = (when - datetime.now(UTC)).total_seconds()
    if delay is not None and delay > limit:
        raise InvalidArguments(
            f"a delay of {delay:.0f}s exceeds the broker visibility timeout minus a margin "
            f"({limit}s): the task would be delivered twice; schedule it with beat instead"
        )
