"""The delay bound (F23): delay + the task's hard time limit + margin < visibility timeout.

A delay inside the bound is published; one beyond it is handed to the durable scheduler
(:mod:`celeryref.reliability.deferred`); a time limit that alone does not fit is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from celeryref.errors import InvalidArguments
from celeryref.reliability import deferred, idempotency, time_budget
from celeryref.reliability.delivery_guard import ETA_MARGIN_SECONDS, check_delay, max_delay
from celeryref.settings import SettingsError, load_settings, settings
from celeryref.tasks import default
from celeryref.workflows.definition import HARD_LIMIT_GRACE, max_timeout
from tests.support import tasks as support

VISIBILITY = settings.broker_visibility_timeout
#: The longest delay of a task on the global limit.
LIMIT = VISIBILITY - settings.task_time_limit - ETA_MARGIN_SECONDS


def test_the_bound_includes_the_time_limit() -> None:
    assert max_delay() == LIMIT
    assert max_delay(1000) == VISIBILITY - 1000 - ETA_MARGIN_SECONDS
    assert max_delay(None) == max_delay(settings.task_time_limit)


def test_delays_inside_the_bound_are_published() -> None:
    assert check_delay(None, None) is None
    assert check_delay(LIMIT - 1, None) is None
    assert check_delay(None, datetime.now(UTC) + timedelta(seconds=LIMIT - 5)) is None


def test_a_delay_at_or_past_the_bound_goes_to_the_scheduler() -> None:
    before = datetime.now(UTC)
    due = check_delay(LIMIT, None)
    assert due is not None and before + timedelta(seconds=LIMIT) <= due
    assert check_delay(LIMIT + 3600, None) is not None


def test_a_long_time_limit_shortens_the_delay_redis_may_hold() -> None:
    """Given a 3000 s limit, a 600 s countdown (fine on the global limit) is deferred."""
    assert check_delay(600, None) is None
    assert check_delay(600, None, time_limit=3000) is not None
    assert check_delay(VISIBILITY - 3000 - ETA_MARGIN_SECONDS - 1, None, time_limit=3000) is None


def test_a_time_limit_that_cannot_fit_is_refused() -> None:
    with pytest.raises(InvalidArguments, match="delivered twice"):
        check_delay(None, None, time_limit=VISIBILITY - ETA_MARGIN_SECONDS)


@pytest.mark.parametrize("form", ["aware", "iso", "naive-utc"])
def test_far_etas_go_to_the_scheduler_at_their_time(form: str) -> None:
    eta = datetime.now(UTC) + timedelta(seconds=LIMIT + 60)
    value = {"aware": eta, "iso": eta.isoformat(), "naive-utc": eta.replace(tzinfo=None)}[form]
    due = check_delay(None, value)
    assert due is not None and abs((due - eta).total_seconds()) < 1


def test_settings_refuse_a_global_limit_without_the_margin() -> None:
    with pytest.raises(SettingsError, match="BROKER_VISIBILITY_TIMEOUT"):
        load_settings({"TASK_TIME_LIMIT": str(VISIBILITY - ETA_MARGIN_SECONDS)})


def test_workflow_step_timeouts_fit_the_visibility_timeout() -> None:
    """The longest step's hard limit (timeout + grace) leaves the margin free."""
    assert max_timeout() + HARD_LIMIT_GRACE + ETA_MARGIN_SECONDS < VISIBILITY
    assert check_delay(None, None, time_limit=max_timeout() + HARD_LIMIT_GRACE) is None


@pytest.fixture
def deferrals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Rows the send path would store (no Postgres in this tier)."""
    stored: list[tuple[Any, ...]] = []

    def defer(name: str, args: Any, kwargs: Any, options: dict[str, Any], due: datetime) -> str:
        stored.append((name, args, kwargs, deferred.storable_options(options), due))
        return str(options.get("task_id") or "new-id")

    monkeypatch.setattr(deferred, "defer", defer)
    return stored


def test_apply_async_defers_without_publishing(deferrals: list[tuple[Any, ...]]) -> None:
    """No broker is running in this tier: a far countdown never reaches it."""
    result = default.add.apply_async((1, 2), countdown=VISIBILITY, task_id="t-1")
    assert result.id == "t-1"
    ((name, args, _, options, _),) = deferrals
    assert (name, list(args)) == (default.add.name, [1, 2])
    assert "countdown" not in options and "eta" not in options


@pytest.mark.parametrize("how", ["keyword", "positional", "eta"])
def test_send_task_by_name_defers(how: str, deferrals: list[tuple[Any, ...]]) -> None:
    """The API, replays and canvas publish by name: the guard sits in ``send_task``."""
    from celeryref.celery_app import app

    name = "celeryref.tasks.default.add"
    too_far = VISIBILITY
    if how == "keyword":
        app.send_task(name, args=[1, 2], countdown=too_far)
    elif how == "positional":
        app.send_task(name, [1, 2], None, too_far)
    else:
        app.send_task(name, eta=datetime.now(UTC) + timedelta(seconds=too_far))
    assert len(deferrals) == 1


def test_by_name_sends_use_the_registered_tasks_own_limit() -> None:
    from celeryref.celery_app import app

    assert app.time_limit_of(support.slow_io.name) == 1
    assert app.time_limit_of(default.add.name) == settings.task_time_limit  # Celery's default
    assert app.time_limit_of("no.such.task") is None  # check_delay: the global limit


def test_signatures_are_guarded_too(deferrals: list[tuple[Any, ...]]) -> None:
    default.add.s(1, 2).apply_async(countdown=VISIBILITY)
    assert len(deferrals) == 1


def test_stored_options_are_json_and_keep_no_process_objects() -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    stored = deferred.storable_options(
        {"queue": "default", "connection": object(), "expires": expires, "link": None}
    )
    assert stored == {"queue": "default", "expires": expires.isoformat()}
    with pytest.raises(InvalidArguments):
        deferred.storable_options({"headers": {"x": object()}})


def test_the_idempotency_lease_follows_the_tasks_own_limit() -> None:
    assert idempotency.lease_for(1) == 1 + idempotency.LEASE_GRACE_SECONDS
    assert idempotency.lease_for(None) == settings.task_time_limit + idempotency.LEASE_GRACE_SECONDS


def test_a_spent_budget_refuses_the_next_io_call() -> None:
    """F24: on the thread pool an I/O call never outlasts the soft limit."""
    assert time_budget.call_timeout(15.0) == 15.0  # no pool budget: the call's own
    time_budget.begin(time_budget.Budget(soft_limit=2.0, hard_limit=3.0))
    try:
        assert 0 < time_budget.call_timeout(15.0) <= 2.0
        time_budget.begin(time_budget.Budget(soft_limit=-1.0, hard_limit=3.0))
        with pytest.raises(Exception, match="soft time limit"):
            time_budget.call_timeout(15.0)
    finally:
        time_budget.end()


def test_exactly_one_side_reports_the_outcome() -> None:
    late = time_budget.Budget(1.0, 2.0)
    assert late.expire() and not late.settle()  # the watchdog won: the thread's is dropped
    early = time_budget.Budget(1.0, 2.0)
    assert early.settle() and not early.expire()  # the task won: the watchdog stands down
