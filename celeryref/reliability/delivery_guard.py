"""Cap redeliveries, so a task that kills its worker cannot loop forever.

``task_acks_late`` + ``task_reject_on_worker_lost`` put a task back on the queue
when its pool process dies (OOM kill, segfault, SIGKILL). That is right for a
process that died by accident and wrong for a message that kills every process
that runs it: the deliveries of each attempt (task id, retry number) that ended
*without an outcome* are counted in Redis, and a delivery past ``MAX_DELIVERIES``
is refused instead of run.

How (F22): each delivery is counted when it starts (:func:`record_delivery`, in the
pool process), so a process or a whole worker that dies mid-run leaves its count
behind, whoever notices. When our code requeues a running message *on purpose* -
the cancel on a lost broker connection and at the end of the soft-shutdown window
(:meth:`celeryref.upstream.request.Request.cancel`), a process terminated for
another request's cancel (F15) - the worker takes that count back
(:func:`forgive_delivery`): a healthy long task requeued by deploys is never
refused. Counting at the death instead would miss a worker killed outright (nobody
is left to count) and loop forever. A take-back Redis cannot take (a lost
connection: the broker's Redis is this one) waits in the worker's memory and is
written before the worker starts its next request (:func:`write_forgiven`); a
worker that dies first leaves one count too many, erring towards refusing sooner,
never towards an endless loop. Requeues *from inside* a task (a retry that could
not be published, a dead letter no store took) still count: they repeat the run.

The other way Redis delivers a message twice is a task still unacknowledged when the
visibility timeout ends: its countdown/ETA plus its hard time limit too long.
:func:`check_delay` sends those to the durable scheduler instead (F23).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import redis

from celeryref.adapters import redis_state
from celeryref.errors import InvalidArguments
from celeryref.settings import VISIBILITY_MARGIN_SECONDS, settings

logger = logging.getLogger(__name__)


#: The request attribute on which the STARTED write hands the task its delivery count
#: (:mod:`celeryref.upstream.result_backend`).
COUNT_ATTRIBUTE = "delivery_count"


def delivery_key(task_id: str, retries: int) -> str:
    return redis_state.key("deliveries", task_id, retries)


def client() -> redis.Redis:
    """Where the counts live: the result database, so that the task's STARTED write
    counts its delivery in the same round trip
    (:mod:`celeryref.upstream.result_backend`; issue 15)."""
    return redis_state.results_client()


def count_ttl() -> int:
    """Seconds a count lives: it outlives every redelivery path (visibility timeout
    included), then expires by itself."""
    return settings.broker_visibility_timeout * (settings.max_deliveries + 1)


def record_delivery(task_id: str, retries: int) -> int:
    """Count one delivery of attempt ``retries`` of ``task_id``; return the count of its
    deliveries without an outcome, this one included. (A task whose STARTED write
    counted it already reads the count from its request instead.)"""
    key = delivery_key(task_id, retries)
    # One round trip, no MULTI/EXEC: a count without its expiry needs the connection
    # cut between two commands sent in one write, and then only outlives its use.
    pipe = client().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, count_ttl())
    count, _ = pipe.execute()
    return int(count)


#: Lua: take one delivery back, never below zero.
_TAKE_BACK = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""
#: Seconds after a failed take-back during which new ones only queue (a lost connection
#: would otherwise block the worker's event loop once per cancelled request).
_QUIET_SECONDS = 5.0
#: Take-backs (task id, retry number) Redis did not take yet; see the module docstring.
_unwritten: set[tuple[str, int]] = set()
_failed_at = -_QUIET_SECONDS


def forgive_delivery(task_id: str, retries: int) -> None:
    """Take back the count of a delivery our code requeued on purpose; never raises."""
    _unwritten.add((task_id, retries))
    write_forgiven()


def write_forgiven() -> None:
    """Write the take-backs not written yet (none while Redis failed in the last
    ``_QUIET_SECONDS``); keep those Redis still refuses. Never raises."""
    global _failed_at
    if not _unwritten or time.monotonic() - _failed_at < _QUIET_SECONDS:
        return
    for task_id, retries in list(_unwritten):
        try:
            client().eval(_TAKE_BACK, 1, delivery_key(task_id, retries))
        except redis.ResponseError:
            logger.exception("delivery count of %s[%s] not taken back", task_id, retries)
        except Exception as exc:
            _failed_at = time.monotonic()
            logger.warning("%d delivery take-backs wait for Redis (%r)", len(_unwritten), exc)
            return
        _unwritten.discard((task_id, retries))


def is_redelivery_loop(deliveries: int) -> bool:
    """``True`` when a message has been delivered more often than allowed."""
    return deliveries > settings.max_deliveries


#: Seconds kept free below the visibility timeout, besides the delay and the time limit:
#: for the worker to receive, start and acknowledge the task.
ETA_MARGIN_SECONDS = VISIBILITY_MARGIN_SECONDS


def max_delay(time_limit: float | None = None) -> float:
    """The longest countdown/ETA (seconds from now) Redis can hold for a task whose hard
    time limit is ``time_limit`` seconds (``None``: ``TASK_TIME_LIMIT``).

    kombu stamps a message in ``unacked_index`` when a worker *receives* it, at once for
    a delayed task, and restores it to the queue ``BROKER_VISIBILITY_TIMEOUT`` seconds
    later unless it was acknowledged. The task must wait out its delay, run up to its
    hard limit and be acknowledged inside that window (F23):
    ``delay + time_limit + ETA_MARGIN_SECONDS < BROKER_VISIBILITY_TIMEOUT``.
    """
    limit = float(time_limit or settings.task_time_limit)
    return settings.broker_visibility_timeout - limit - ETA_MARGIN_SECONDS


def delay_of(countdown: float | None, eta: datetime | str | None) -> float | None:
    """Seconds from now until a task sent with ``countdown``/``eta`` is due (``eta`` wins,
    as in Celery; a naive ``eta`` is UTC); ``None`` when it has neither."""
    if eta is not None:
        when = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return (when - datetime.now(UTC)).total_seconds()
    return None if countdown is None else float(countdown)


def check_delay(
    countdown: float | None, eta: datetime | str | None, time_limit: float | None = None
) -> datetime | None:
    """``None`` when Redis can hold the delay of a task whose hard limit is ``time_limit``
    (``None``: ``TASK_TIME_LIMIT``); else the UTC time it is due, for the durable scheduler
    (:mod:`celeryref.reliability.deferred`).

    Raises :class:`~celeryref.errors.InvalidArguments` when the time limit alone does not
    fit under the visibility timeout: such a task would be redelivered while it runs,
    however soon it started.
    """
    limit = max_delay(time_limit)
    if limit <= 0:
        raise InvalidArguments(
            f"a time limit of {time_limit or settings.task_time_limit}s plus a margin of "
            f"{ETA_MARGIN_SECONDS}s does not fit in the broker visibility timeout "
            f"({settings.broker_visibility_timeout}s): the task would be delivered twice"
        )
    delay = delay_of(countdown, eta)
    if delay is None or delay < limit:
        return None
    return datetime.now(UTC) + timedelta(seconds=delay)
