"""A publish that kombu retries after its reply was lost is pushed once, not twice (F25).

kombu retries a publish that failed with a connection error (Celery's
``task_publish_retry``, here ``REDIS_MAX_RETRIES`` attempts), and redis-py retries a
command whose connection broke. When the *reply* to the push is what was lost (a
connection cut, a Redis that answered after the socket timeout), Redis has the message
already and the retry pushes it again: two messages with one task id, and the task runs
twice. Stock kombu has that hole (``tests/integration/test_broker_window.py`` has the
control).

Here every task publish gets a new random id in its headers (:data:`HEADER`), stamped
by Celery's ``before_task_publish`` signal (:func:`stamp`, connected in
:mod:`celeryref.app.signals`), which fires once per publish, outside the retries: kombu
and Celery hand the same headers dict to every attempt of one publish, so a retry
carries the same id, while every new publish (a Celery retry, whose headers are copied
from the request that carries the old id; an outbox or deferred-task sweep; a
dead-letter replay) is given a new one. :data:`PUT` pushes the message and rings its
queue's bell only if ``SET NX`` on the id's key succeeds, all in one script: one round
trip, as before, and under ``maxmemory`` the whole script is refused or runs. A message
published by plain kombu (no signal, no id) is pushed as kombu pushes it.

The key lives :func:`seconds_for` a publish's whole retry window, so memory grows with
the publish rate (about 100 bytes per message published in that window).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any, Final

import redis

logger = logging.getLogger(__name__)

#: The header carrying a publish's id.
HEADER: Final = "x-put-id"
#: Where a publish's id is kept while a retry of it may still come.
KEY_PREFIX: Final = "_kombu.put."

#: KEYS: the message's list, its queue's bell, the id's key, then the lists to expire.
#: ARGV: the message, the bell's token, seconds to keep the id, milliseconds to expire
#: the lists after (``""``: no ``x-expires``). Returns 1 if pushed, 0 if a retry.
PUT: Final = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[2])
if ARGV[4] ~= '' then
  for i = 4, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return 1
"""
#: What ``EVALSHA`` calls :data:`PUT` by.
PUT_SHA: Final = hashlib.sha1(PUT.encode()).hexdigest()  # noqa: S324 (Redis's name)


def seconds_for(max_retries: int, socket_timeout: float, interval_max: float) -> int:
    """How long a publish may still be retried: every attempt waits at most the socket
    timeout and the interval before the next, plus a minute's margin."""
    return int((max_retries + 1) * (socket_timeout + interval_max)) + 60


def stamp(headers: dict[str, Any], **_: Any) -> None:
    """Give a task publish a new id (Celery's ``before_task_publish`` receiver): always a
    new one, never the one a Celery retry copied from the request it retries."""
    headers[HEADER] = uuid.uuid4().hex


def put_id(message: dict[str, Any]) -> str | None:
    """The publish id in ``message``'s headers; ``None`` when it has none (not published
    through Celery: pushed as kombu pushes it)."""
    headers = message.get("headers")
    found = headers.get(HEADER) if isinstance(headers, dict) else None
    return str(found) if found else None


def push(
    client: redis.Redis,
    put_id: str,
    payload: str,
    lists: tuple[str, str],
    keep_seconds: int,
    expire: tuple[list[str], int | None],
    prefix: str = "",
) -> bool:
    """Run :data:`PUT`; whether the message was pushed (``False``: a retry, dropped).

    ``prefix``: kombu's ``global_keyprefix``; its client prefixes an ``EVALSHA``'s first
    key only, so the others are prefixed here."""
    key, ring = lists
    expiring, milliseconds = expire
    rest = [ring, KEY_PREFIX + put_id, *(expiring if milliseconds else [])]
    keys = [key, *(prefix + name for name in rest)]
    args = [payload, b"1", keep_seconds, milliseconds or ""]
    try:
        pushed = client.evalsha(PUT_SHA, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:  # Redis restarted: its script cache is empty
        client.script_load(PUT)
        pushed = client.evalsha(PUT_SHA, len(keys), *keys, *args)
    if not pushed:
        logger.warning("publish %s was retried after Redis had it: not pushed twice", put_id)
    return bool(pushed)
