"""Exactly one beat: a scheduler that runs only while it holds a Redis lease.

A second ``beat`` (``--scale beat=2``, a restart overlapping the old container)
waits in standby without opening the schedule file and without sending anything;
it takes over when the holder stops (lease released) or dies (lease expires after
``BEAT_LOCK_TTL`` seconds). A holder that loses its lease exits, and its restart
policy puts it back in standby, so two beats never fire the same tick.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import redis
from celery.beat import PersistentScheduler

from celeryref.adapters import redis_state
from celeryref.settings import settings

logger = logging.getLogger(__name__)

#: Redis key of the beat lease.
LOCK_KEY = redis_state.key("beat", "lock")

# Renew or release only a lease that is still ours.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease:
    """A lease on ``key`` held by one owner token, expiring after ``ttl`` seconds."""

    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"

    def acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        """Extend the lease; ``False`` when it is no longer ours."""
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> bool:
        """Give the lease up if it is still ours."""
        return bool(self.client.eval(_RELEASE, 1, self.key, self.token))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else None


#: Set by SIGTERM/SIGINT during standby: no scheduler of this process may start.
_stopping = threading.Event()


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """While waiting, SIGTERM/SIGINT end the process at once.

    Celery's own handler would ``close()`` the scheduler, which builds a new one
    (the first is not constructed yet) that would wait again: a stop that hangs
    until the grace period kills it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        _stopping.set()
        raise SystemExit(0)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class SingleBeatScheduler(PersistentScheduler):
    """:class:`~celery.beat.PersistentScheduler` guarded by a :class:`RedisLease`.

    The lease is taken in :meth:`setup_schedule`, which Celery skips for the
    ``lazy`` instance it builds only to print the banner, and before the schedule
    file is opened, so a standby beat never touches a file the active one uses.
    """

    #: Seconds between attempts to take the lease while in standby.
    standby_poll = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lease = RedisLease(redis_state.client(), LOCK_KEY, settings.beat_lock_ttl)
        self.holds_lease = False
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        self._wait_for_lease()
        super().setup_schedule()

    def _wait_for_lease(self) -> None:
        if _stopping.is_set():
            raise SystemExit(0)
        if not self.lease.acquire():
            logger.warning(
                "beat standby: lease %s held by %s; waiting", LOCK_KEY, self.lease.holder()
            )
            with _stop_on_signals():
                while not self.lease.acquire():
                    time.sleep(self.standby_poll)
        self.holds_lease = True
        logger.info("beat lease %s acquired by %s", LOCK_KEY, self.lease.token)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.lease.renew():
            logger.error("beat lease %s lost; exiting so that only one beat runs", LOCK_KEY)
            raise SystemExit(1)
        interval: float = super().tick(*args, **kwargs)
        return interval

    def close(self) -> None:
        super().close()
        if not self.holds_lease:
            return
        try:
            self.lease.release()
        except redis.RedisError:
            logger.warning("could not release beat lease %s; it expires by itself", LOCK_KEY)
