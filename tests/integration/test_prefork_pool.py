"""F27: after a pool process dies holding a job, a restarted event loop must not read the
new process's job pipe as a result pipe (celeryref.upstream.prefork_pool).

Real billiard processes and kombu's hub, no broker: a process runs a job, is killed
(as the cancel on a lost broker connection terminates it), and the pool replaces it;
the descriptor numbers its pipes had are handed out again, here so that its old result
pipe's number becomes the new process's job pipe (the kernel gives the lowest free
number; the test holds those below it while the new pipes are made). Then the pool is
registered with the hub again, as the worker does when its consumer restarts after a
reconnect. The stock pool then watches the job pipe as a result pipe: the first job
sent to the new process wakes the main process into a blocking read of it, the hang
the Redis restart drill (scenario 8) found.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery.concurrency import asynpool
from kombu.asynchronous import Hub

from celeryref.upstream import prefork_pool


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _drive(hub: Hub, done: Callable[[], object], timeout: float = 20) -> None:
    """Turn the hub's loop until ``done()``."""
    deadline = time.monotonic() + timeout
    loop = hub.loop
    while not done():
        assert time.monotonic() < deadline, "the pool did not get there"
        next(loop)


@contextmanager
def _killed_with_a_job(pool_class: type[Any]) -> Iterator[tuple[Any, Hub, Any]]:
    """A one-process pool whose process was killed running a job and replaced, its old
    result pipe's number now the new process's job pipe; the pool registered anew."""
    hub = Hub()
    pool = pool_class(processes=1, threads=False)
    try:
        pool.register_with_event_loop(hub)
        _drive(hub, lambda: not pool._waiting_to_start)
        dying = pool._pool[0]
        accepted: list[object] = []
        pool.apply_async(_sleep, (60,), accept_callback=lambda *_: accepted.append(1))
        _drive(hub, lambda: accepted)
        old_result_fd = dying.outqR_fd
        create = pool.create_process_queues
        taken: list[int] = []

        def create_on_the_old_number() -> Any:
            # The old pipes are closed now: hold every free number below the old
            # result pipe's, so the new job pipe is made on it.
            while (fd := os.open(os.devnull, os.O_RDONLY)) < old_result_fd:
                taken.append(fd)
            os.close(fd)
            return create()

        pool.create_process_queues = create_on_the_old_number
        os.kill(dying.pid, signal.SIGKILL)
        _drive(hub, lambda: [p.pid for p in pool._pool if p.pid != dying.pid])
        pool.create_process_queues = create
        for fd in taken:
            os.close(fd)
        new = pool._pool[0]
        assert new.inq._reader.fileno() == old_result_fd, "setup: the number is reused"
        pool.register_with_event_loop(hub)  # the consumer restarts after a reconnect
        yield pool, hub, new
    finally:
        pool.terminate()
        hub.close()


def _job_pipe_watched_as_results(pool: Any, hub: Hub, new: Any) -> bool:
    job_pipe = new.inq._reader.fileno()
    return job_pipe in pool._fileno_to_outq and job_pipe in hub.readers


def test_control_celerys_prefork_pool_watches_a_new_job_pipe_as_a_result_pipe() -> None:
    """Control (F27): Celery 5.7's AsynPool keeps the dead process's result pipe number."""
    with _killed_with_a_job(asynpool.AsynPool) as (pool, hub, new):
        assert _job_pipe_watched_as_results(pool, hub, new)


def test_a_replaced_process_leaves_no_pipe_of_its_own_in_the_index() -> None:
    """Ours: the index and the hub hold the live process's result pipe, nothing else, and
    a job sent to the new process comes back."""
    with _killed_with_a_job(prefork_pool.AsynPool) as (pool, hub, new):
        assert not _job_pipe_watched_as_results(pool, hub, new)
        assert set(pool._fileno_to_outq) == {new.outqR_fd}
        results: list[float] = []
        pool.apply_async(_sleep, (0.01,), callback=results.append)
        _drive(hub, lambda: results)
        assert results == [0.01]
