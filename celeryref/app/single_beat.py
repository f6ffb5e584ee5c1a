"""Exactly one beat: celery-redbeat keeps the schedule and a lock in Redis.

Written for celery-redbeat 2.4.2 (``redbeat.RedBeatScheduler``, configured in
``celeryref.app.config``) on Celery 5.7.0. Every entry and its last run live in the
state Redis DB under :data:`KEY_PREFIX`, so beat needs no volume and a restarted
beat neither repeats nor skips a tick.

* On ``beat_init`` redbeat takes :data:`LOCK_KEY` (a blocking redis-py ``Lock``,
  tried every ``beat_max_loop_interval`` seconds); each tick extends it to
  ``BEAT_LOCK_TTL`` seconds. A second beat (``--scale beat=2``, a restart that
  overlaps the old container) waits for it and sends nothing; it takes over when
  the holder stops (``close`` releases the lock) or dies (the lock expires).
* A holder whose lock expired fails its next extend (``LockNotOwnedError``) and
  exits; its restart policy puts it back in standby.
* SIGTERM during standby exits 0: ``Service.start`` builds the scheduler before it
  sends ``beat_init``, so Celery's own handler closes that scheduler (no lock to
  release) and raises ``SystemExit``.
* The banner's ``lazy`` scheduler takes no lock and writes nothing.

Unlike the lease this module implemented before, a standby writes the static
entries before it waits (redbeat's ``setup_schedule`` runs in the constructor):
the definitions of its own ``beat_schedule`` (``hset``) and their scores; the last
run is only set if missing (``hsetnx``), and whether an entry is due is decided
from that last run, so the holder neither loses nor repeats a tick. Entries a
standby's schedule no longer has are deleted at once, not at takeover.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import beat_init

from celeryref.adapters import redis_state

logger = logging.getLogger(__name__)

#: Prefix of beat's keys: ``celeryref:beat:<entry name>``, ``celeryref:beat::schedule``.
KEY_PREFIX = redis_state.key("beat") + ":"
#: Redis key of the lock the one sending beat holds.
LOCK_KEY = redis_state.key("beat", "lock")


@beat_init.connect
def report_standby(sender: Any = None, **kwargs: Any) -> None:
    """Say so when this beat is about to wait for another beat's lock.

    Connected when the app is configured, so it runs before redbeat's own
    ``beat_init`` receiver (which blocks until the lock is free).
    """
    if redis_state.client().exists(LOCK_KEY):
        logger.warning("beat standby: lock %s is held by another beat; waiting", LOCK_KEY)
