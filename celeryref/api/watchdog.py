"""The API process exits when it stops serving, so the restart policy replaces it.

Compose restarts a container whose main process ended (``restart: unless-stopped``) but
leaves an ``unhealthy`` one running forever: a wedged API (issue 17, every request
thread stuck, the container unhealthy for minutes) has to end itself.

* The probe, a task on the event loop: every :data:`PROBE_SECONDS` it waits for a
  request thread to run a no-op (``anyio.to_thread.run_sync``, through the limiter
  FastAPI's sync routes use) and records when that finished.
* The watch, a daemon thread: when no probe has finished for ``API_WATCHDOG_SECONDS``
  (the loop is blocked, or every request thread is stuck) it logs, writes every
  thread's stack to stderr (``faulthandler``, for the post-mortem) and ends the process
  with ``os._exit(1)``: no clean-up that could hang as well.

A busy API is not a stuck one: the probe queues behind the request threads' current
requests, each bounded by the Redis, Postgres and broker timeouts (seconds), far below
the default 60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable

import anyio.to_thread

logger = logging.getLogger(__name__)

#: Seconds between two probes of the event loop and the request threads.
PROBE_SECONDS = 1.0


def _nothing() -> None:
    """What a probe runs in a request thread."""


class Watchdog:
    """Ends the process (``exit(1)``) once no probe finished for ``stuck_seconds``."""

    def __init__(
        self,
        stuck_seconds: float,
        probe_seconds: float = PROBE_SECONDS,
        exit: Callable[[int], object] = os._exit,  # noqa: A002 (what it is)
    ) -> None:
        self.stuck_seconds = stuck_seconds
        self.probe_seconds = probe_seconds
        self.exit = exit
        self.last_probe = time.monotonic()
        self._stopped = threading.Event()

    async def probe(self) -> None:
        """Forever: have a request thread run a no-op, note the time, sleep."""
        while True:
            await anyio.to_thread.run_sync(_nothing, abandon_on_cancel=True)
            self.last_probe = time.monotonic()
            await asyncio.sleep(self.probe_seconds)

    def watch(self) -> None:
        """Until stopped: exit once the last probe is ``stuck_seconds`` old."""
        every = min(1.0, self.stuck_seconds / 4)
        while not self._stopped.wait(every):
            silent = time.monotonic() - self.last_probe
            if silent > self.stuck_seconds:
                logger.critical(
                    "the API has not served for %.0fs (event loop or every request thread "
                    "stuck); exiting so that the restart policy replaces the process",
                    silent,
                )
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                sys.stderr.flush()
                self.exit(1)
                return

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Watchdog]:
        """Probe and watch while the block runs (the app's lifespan)."""
        self.last_probe = time.monotonic()
        self._stopped.clear()
        probing = asyncio.get_running_loop().create_task(self.probe(), name="watchdog-probe")
        threading.Thread(target=self.watch, name="api-watchdog", daemon=True).start()
        try:
            yield self
        finally:
            self._stopped.set()
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
