"""Celery's Redis result backend, storing a task state in one round trip instead of two.

Celery 5.7's ``BaseKeyValueStoreBackend._store_result`` first reads the stored
state (``GET``), returns if it is ``SUCCESS`` (a lost or duplicate run must not
overwrite a result), and only then writes (``MULTI SETEX PUBLISH EXEC``): two
sequential round trips per state, and with ``task_track_started`` two states per
task. The pool process waits for each reply; measured under a backlog of short tasks
(py-spy, docs/PERFORMANCE.md) these waits were most of its busy time. The check and
the write are also two steps, so a result stored between them is still overwritten.

Here one Lua script (:data:`STORE`) does the same check and write atomically in one
``EVALSHA``: same keys, same JSON value, same expiry, same ``PUBLISH`` for clients
waiting on the result, same ``SUCCESS`` guard (now without a gap). Everything else
(retries via ``ensure``, size limit, chords, reads) is Celery's.

The STARTED write also counts the delivery (F22's redelivery cap,
:mod:`celeryref.reliability.delivery_guard`) in the same script: the count lives in
the result database, and the pool process makes two round trips per task (STARTED,
SUCCESS), as plain Celery does (a ``GET`` and a write), instead of three. The count
is handed to the task on its request (``delivery_guard.COUNT_ATTRIBUTE``).

STARTED is stored but not published (issue 15). Celery publishes every state to the
task's channel for clients waiting in ``AsyncResult.get``; they act only on ready
states (SUCCESS, FAILURE, REVOKED) and pass the others to an ``on_message``
callback. The STARTED message carried the extended meta to each waiting client for
nothing else: measured on the bench, two state messages per task made the client
collecting results spend about twice plain Celery's CPU per task. The state stays
readable (``GET``: the API, the CLI, ``AsyncResult.state``, ``get`` after it
subscribes); Flower learns it from the ``task-started`` event; PROGRESS and the
ready states are still published.

Selected by :meth:`celeryref.upstream.app.App._get_backend` for ``redis://`` URLs.
"""

from __future__ import annotations

from typing import Any, Final

import redis
from celery import states
from celery.backends.redis import RedisBackend as CeleryRedisBackend
from celery.exceptions import BackendStoreError

from celeryref.reliability import delivery_guard

#: States stored without a ``PUBLISH``: nothing waiting on a result acts on them.
UNPUBLISHED_STATES: Final = frozenset({states.STARTED})

#: KEYS[1] the result key, KEYS[2] (optional) a delivery counter. ARGV: the encoded
#: meta, seconds to expire (0: never), seconds the counter lives, "1" to publish the
#: meta on the key's channel ("0": store only). Returns
#: ``{written, count}``: written 0 when a ``SUCCESS`` is stored already (nothing
#: written), count the counter after its increment (0 without KEYS[2]).
STORE: Final = """
local count = 0
if KEYS[2] then
  count = redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then return {0, count} end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SETEX', KEYS[1], ttl, ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if ARGV[4] == '1' then redis.call('PUBLISH', KEYS[1], ARGV[1]) end
return {1, count}
"""


class RedisBackend(CeleryRedisBackend):
    """Celery's ``RedisBackend`` whose state writes are one atomic ``EVALSHA``."""

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = task_id.decode() if isinstance(task_id, bytes) else task_id
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        expires = self.failure_expires if state == states.FAILURE else self.expires
        key = self.get_key_for_task(task_id)
        counter = None
        if state == states.STARTED and getattr(request, "id", None):
            counter = delivery_guard.delivery_key(request.id, request.retries or 0)
        publish = "0" if state in UNPUBLISHED_STATES else "1"
        args = (key, value, int(expires or 0), counter, publish)
        try:
            _, count = self.ensure(self._store_unless_succeeded, args)
        except redis.ResponseError:
            if counter is None:
                raise
            # The counter refused (not a number): store the state alone, and let the
            # task count itself, which fails the same way and dead-letters it there.
            self.ensure(self._store_unless_succeeded, (*args[:3], None, args[4]))
            return result
        if counter is not None:
            setattr(request, delivery_guard.COUNT_ATTRIBUTE, count)
        return result

    def _store_unless_succeeded(
        self, key: bytes | str, value: Any, expires: int, counter: str | None, publish: str = "1"
    ) -> tuple[int, int]:
        script = getattr(self, "_store_script", None)
        if script is None:
            script = self._store_script = self.client.register_script(STORE)
        keys = [key] if counter is None else [key, counter]
        written, count = script(
            keys=keys, args=[value, expires, delivery_guard.count_ttl(), publish]
        )
        return int(written), int(count)
