"""Remote control from the API process never waits on kombu's pools while holding them.

The deadlock (issue 17: 80 concurrent ``GET /workers`` wedged every request thread in
``kombu.resource.Resource.acquire``, for good). Written against celery 5.7.0 / kombu 5.7.0:

* ``celery.app.control.Control.broadcast`` takes a connection from the app's broker pool
  (``app.connection_or_acquire`` -> ``app.pool``, ``broker_pool_limit`` connections) and
  publishes through ``self.mailbox(conn)._broadcast``;
* ``kombu.pidbox.Mailbox._publish`` gets its producer from ``producer_or_acquire``, i.e.
  ``Control``'s ``producer_pool=lazy(lambda: app.amqp.producer_pool)``;
* ``kombu.pools.ProducerPool.prepare`` revives that producer with
  ``self.connections.acquire(block=True)`` (no timeout) on *the same* connection pool.

Each broadcast holds one pooled connection while it waits for a second: as many
concurrent broadcasts as the pool holds wait for each other forever. Two rules here:

* :func:`one_resource_per_broadcast`: this process's control mailbox publishes with a
  ``Producer`` on the channel of the connection the broadcast already holds, kombu's
  own default (``Mailbox(producer_pool=None)`` -> ``Producer(channel)`` in
  ``producer_or_acquire``). A revoke (``DELETE /tasks/{id}``, a workflow cancel) then
  takes one pooled connection and returns it; nothing waits while holding one.
* :func:`dedicated_mailbox`: the worker snapshot behind ``GET /workers``
  (:mod:`celeryref.api.worker_snapshot`) broadcasts on a connection of its own and takes
  nothing from the pools at all.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.connection import Connection


def one_resource_per_broadcast(app: Celery) -> None:
    """Make ``app``'s broadcasts publish on the connection they hold (no producer pool).

    Only the API process calls it (at start-up); workers keep Celery's wiring."""
    app.control.mailbox.producer_pool = None


def dedicated_mailbox(app: Celery, connection: Connection) -> Any:
    """``app``'s control mailbox bound to ``connection``, publishing on it: a broadcast
    through it (``multi_call``, ``abcast``) uses ``connection`` and nothing else."""
    mailbox = app.control.mailbox(connection)  # a copy (kombu ``Mailbox.__call__``)
    mailbox.producer_pool = None
    return mailbox
