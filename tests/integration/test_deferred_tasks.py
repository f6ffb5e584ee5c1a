"""F23: a delay the broker cannot hold goes to the durable scheduler and runs once, when due."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeryref import queues
from celeryref.adapters import db
from celeryref.reliability import deferred
from celeryref.reliability.delivery_guard import ETA_MARGIN_SECONDS, max_delay
from celeryref.settings import settings
from celeryref.tasks.scheduled import deferred as sweep
from tests.conftest import wait_for
from tests.support import tasks as support

#: Seconds of delay Redis may hold for the task sent here (its time limit leaves no more).
HELD = 4
#: A hard time limit that leaves only ``HELD`` seconds of delay under the visibility timeout.
TIME_LIMIT = settings.broker_visibility_timeout - ETA_MARGIN_SECONDS - HELD
#: The countdown sent: beyond the safe bound, yet short enough to wait for here.
COUNTDOWN = HELD + 2


@pytest.fixture
def no_deferrals(clean_state: None) -> Iterator[None]:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE deferred_tasks")
    yield


def runs(label: str) -> int:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM test_side_effects WHERE label = %s", (label,))
        (count,) = cur.fetchone()
    return int(count)


def test_a_countdown_past_the_bound_runs_once_after_the_sweep(
    no_deferrals: None, worker_process: Any
) -> None:
    """Given a task whose time limit leaves Redis 4 s of delay, a 6 s countdown is stored in
    Postgres, not published; the sweep publishes it once due, with the caller's task id,
    and it runs exactly once."""
    assert max_delay(TIME_LIMIT) == HELD
    worker_process(queues.DEFAULT, name="deferred")
    result = support.hold.apply_async(
        ("deferred", 0), countdown=COUNTDOWN, time_limit=TIME_LIMIT, soft_time_limit=HELD
    )

    (row,) = deferred.pending()
    assert (row.task_id, row.task_name) == (result.id, support.hold.name)
    assert sweep.publish_deferred_tasks() == 0  # not due yet: nothing published
    assert runs("deferred") == 0

    wait_for(lambda: sweep.publish_deferred_tasks() == 1, COUNTDOWN + 10, "the sweep", every=0.5)
    assert result.get(timeout=30) == {"label": "deferred", "runs": 1}
    assert sweep.publish_deferred_tasks() == 0
    assert deferred.pending() == []
    assert runs("deferred") == 1
