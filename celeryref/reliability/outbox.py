"""Committed means published (F17): the outbox pattern of this deployment, and its lease.

Whatever a client submission commits to Postgres and then publishes (a workflow's
queued steps, a map-reduce job's chord) is written *unpublished* in the submitter's
transaction (``published_at IS NULL``: the row is its own outbox entry), published
after the commit, and marked published under the row's lock. Three things make
"committed" imply "published within a bounded time":

1. The submitter withdraws what it committed when its publish fails (deleted under
   the row lock unless already published), so the API's 503 "nothing was accepted"
   stays true. We chose that over "commit, answer 202, let the sweep publish": the
   503 + ``Retry-After`` contract was already the clients' (and the fault suite's),
   and a client told 202 while the broker is down could not poll its task either.
2. A beat-driven sweep (``celeryref.tasks.scheduled.outbox.sweep_outbox``, every
   ``OUTBOX_SWEEP_SECONDS``) republishes what is still unpublished
   ``OUTBOX_GRACE_SECONDS`` after it was committed (a submitter or step that died
   between commit and publish, a withdrawal that failed too), and reduces map-reduce
   jobs whose partials are all stored but whose reducer never ran (after
   ``OUTBOX_STUCK_SECONDS``). The grace exceeds a publish's worst case (client retries
   x ``REDIS_SOCKET_TIMEOUT``), so a live publisher is never raced; row locks taken
   with ``SKIP LOCKED`` make sure of it.
3. Consumers tolerate the at-least-once delivery this gives (a publish whose mark was
   lost is sent again): a workflow step runs once per step (its dispatch id), a map
   replaces its partial, a reducer of a finished job returns.

:func:`lease` keeps one sweep running at a time across the cluster: a Redis key set
with ``NX`` and an expiry (a sweeper that dies frees it after ``seconds``), released
only by its owner. A catalog task (``POST /tasks``) has no outbox row: its client key
commits only after its message is on the broker (:mod:`celeryref.submission.submit`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from celeryref.adapters import redis_state

logger = logging.getLogger(__name__)

#: Deletes the lease only if this owner still holds it (an expired lease retaken by
#: another sweeper must not be released by the first).
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


@contextmanager
def lease(name: str, seconds: float) -> Iterator[bool]:
    """Hold the cluster-wide lease ``name`` for at most ``seconds``; yields whether it was
    taken (``False``: another holder runs, do nothing)."""
    key = redis_state.key("lease", name)
    owner = uuid.uuid4().hex
    client = redis_state.client()
    taken = bool(client.set(key, owner, nx=True, px=max(1, int(seconds * 1000))))
    try:
        yield taken
    finally:
        if taken:
            try:
                client.eval(_RELEASE, 1, key, owner)
            except Exception as exc:  # it expires by itself
                logger.info("could not release lease %s: %s", key, exc)
