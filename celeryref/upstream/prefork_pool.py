"""Celery's prefork pool without a hang after a broker reconnect (F27).

A pool process that dies while it holds a job (killed, terminated by a time limit, or
cancelled because the broker connection was lost: ``worker_cancel_long_running_tasks_
on_connection_loss``) goes through Celery 5.7's ``AsynPool.on_partial_read``: the
process is marked ``dead``, its pipes are closed, and new ones are made for the process
that replaces it. Marked dead, it is skipped by ``on_process_down``, the only place that
removes a process from the pool's index of result pipes (``_fileno_to_outq``), so the
index keeps the old descriptor number. The kernel hands that number to the next pipe
opened, often one of the new process's. When the consumer restarts after a lost
broker connection, ``register_with_event_loop`` watches every descriptor of the index as
a result pipe; if the number now belongs to the pipe a process reads its jobs from,
the worker's main process reads the next job sent there as a result, with a blocking
``read``, and waits forever: the worker stops consuming, its liveness check fails, and
Docker leaves it so (the fault suite's Redis restart drill, scenario 8, found it).

:class:`AsynPool` removes the dead process's result and acknowledgement pipes from the
indices before they are closed, as ``on_process_down`` would have; the job pipe is
already removed by Celery (``on_inqueue_close``). Upstream: the family of
https://github.com/celery/celery/issues/4185 (workers hanging on IPC, closed); this
path is not fixed in 5.7.0. Reproduced by ``tests/integration/test_prefork_pool.py``.

Wired in by the ``worker_pool`` setting (:mod:`celeryref.app.config`): Celery uses it
for ``--pool prefork`` and when no pool is named.
"""

from __future__ import annotations

from typing import Any

from celery.concurrency import asynpool, prefork


class AsynPool(asynpool.AsynPool):
    """Celery's event-loop pool; a process's pipes leave its indices when closed."""

    def destroy_queues(self, queues: tuple[Any, Any, Any], proc: Any) -> int:
        _, outq, synq = queues
        ends = [(self._fileno_to_outq, outq._reader)]
        if synq is not None:
            ends.append((self._fileno_to_synq, synq._writer))
        for index, end in ends:
            if not end.closed and index.get(end.fileno()) is proc:  # not reused yet
                del index[end.fileno()]
        return int(super().destroy_queues(queues, proc))


class TaskPool(prefork.TaskPool):
    """Celery's prefork pool on :class:`AsynPool`."""

    Pool = AsynPool
