"""The API's watchdog ends a process that stopped serving; the worker snapshot's staleness
bound (issue 17 item 3). Nothing running: the watchdog is driven with its own loops."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from celeryref.api import worker_snapshot
from celeryref.api.watchdog import Watchdog
from tests.conftest import ROOT, wait_for


def test_a_process_whose_event_loop_is_blocked_exits_with_its_stacks() -> None:
    """A loop blocked for good (a sync call in async code): the real ``os._exit(1)``
    within the watchdog's seconds, every thread's stack on stderr."""
    script = textwrap.dedent(
        """
        import asyncio, time
        from celeryref.api.watchdog import Watchdog

        async def main():
            async with Watchdog(1.0, probe_seconds=0.1).running():
                await asyncio.sleep(0.5)
                time.sleep(120)  # the loop never runs again

        asyncio.run(main())
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 30
    assert "has not served" in done.stderr and '"<string>", line 8 in main' in done.stderr


def test_every_request_thread_stuck_ends_the_process() -> None:
    """The loop answers but every request thread is stuck (the wedge of issue 17):
    the probe cannot get a thread, the watchdog exits."""
    exits: list[int] = []
    release = threading.Event()

    async def main() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        async with anyio.create_task_group() as stuck:
            for _ in range(2):
                stuck.start_soon(
                    lambda: anyio.to_thread.run_sync(release.wait, abandon_on_cancel=True)
                )
            async with Watchdog(0.5, probe_seconds=0.05, exit=exits.append).running():
                while not exits:
                    await anyio.sleep(0.05)
            release.set()

    anyio.run(main)
    assert exits == [1]


def test_a_busy_but_serving_process_lives() -> None:
    """Threads come free within the watchdog's seconds: no exit, however long it runs."""
    exits: list[int] = []

    async def main() -> None:
        async with Watchdog(0.5, probe_seconds=0.05, exit=exits.append).running() as dog:
            deadline = time.monotonic() + 2.0  # four times the watchdog's seconds
            while time.monotonic() < deadline:
                await anyio.to_thread.run_sync(time.sleep, 0.1)  # a request
            assert time.monotonic() - dog.last_probe < 0.5

    anyio.run(main)
    assert exits == []


def test_the_served_app_runs_the_watchdog_only_when_asked() -> None:
    """``api_with_logging`` (the app service) sets ``API_WATCHDOG_SECONDS``; :data:`api`
    imported by a test has none."""
    from celeryref.api.main import api

    def running() -> bool:
        return any(t.name == "api-watchdog" and t.is_alive() for t in threading.enumerate())

    with TestClient(api):
        assert not running()
    api.state.watchdog_seconds = 30.0
    try:
        with TestClient(api):
            assert running()
    finally:
        del api.state.watchdog_seconds
    wait_for(lambda: not running(), 5, "the watchdog to stop with the app")


class FakeSnapshots(worker_snapshot.WorkerSnapshots):
    """Snapshots whose refresher is only counted."""

    def __init__(self, age: float | None) -> None:
        super().__init__(app=None, refresh_seconds=2.0)  # type: ignore[arg-type]
        if age is not None:
            self.latest = worker_snapshot.Snapshot([], time.monotonic() - age)
        self.asked = 0

    def want(self) -> None:
        self.asked += 1


@pytest.mark.parametrize(("age", "asked"), [(1.0, 0), (5.0, 1)])
def test_readers_get_a_snapshot_young_enough_at_once(age: float, asked: int) -> None:
    """Younger than the refresh interval: served as is; older (but under the maximum
    age): served, and the refresher is woken for the next reader."""
    snapshots = FakeSnapshots(age)
    got = asyncio.run(snapshots.fresh(max_age=10.0, wait=0.0))
    assert got is snapshots.latest and snapshots.asked == asked


@pytest.mark.parametrize("age", [None, 30.0])
def test_no_snapshot_young_enough_is_unavailable_after_the_wait(age: Any) -> None:
    snapshots = FakeSnapshots(age)
    started = time.monotonic()
    with pytest.raises(worker_snapshot.SnapshotUnavailable):
        asyncio.run(snapshots.fresh(max_age=10.0, wait=0.3))
    assert 0.3 <= time.monotonic() - started < 5 and snapshots.asked > 0
