"""Delays longer than the visibility timeout are refused before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from celeryref.errors import InvalidArguments
from celeryref.reliability.delivery_guard import ETA_MARGIN_SECONDS, check_delay
from celeryref.settings import settings
from celeryref.tasks import default

LIMIT = settings.broker_visibility_timeout - ETA_MARGIN_SECONDS


def test_short_delays_pass() -> None:
    check_delay(None, None)
    check_delay(LIMIT, None)
    check_delay(None, datetime.now(UTC) + timedelta(seconds=LIMIT - 5))


def test_long_countdowns_are_refused() -> None:
    with pytest.raises(InvalidArguments, match="visibility timeout"):
        check_delay(LIMIT + 1, None)


@pytest.mark.parametrize("form", ["aware", "iso", "naive-utc"])
def test_far_etas_are_refused(form: str) -> None:
    eta = datetime.now(UTC) + timedelta(seconds=LIMIT + 60)
    value = {"aware": eta, "iso": eta.isoformat(), "naive-utc": eta.replace(tzinfo=None)}[form]
    with pytest.raises(InvalidArguments, match="visibility timeout"):
        check_delay(None, value)


def test_apply_async_refuses_before_publishing() -> None:
    """No broker is running in this tier: the refusal happens before any connection."""
    with pytest.raises(InvalidArguments, match="delivered twice"):
        default.add.apply_async((1, 2), countdown=settings.broker_visibility_timeout)


@pytest.mark.parametrize("how", ["keyword", "positional", "eta"])
def test_send_task_by_name_refuses_before_publishing(how: str) -> None:
    """The API, replays and canvas publish by name: the guard sits in ``send_task``."""
    from celeryref.celery_app import app

    name = "celeryref.tasks.default.add"
    too_far = settings.broker_visibility_timeout
    with pytest.raises(InvalidArguments, match="delivered twice"):
        if how == "keyword":
            app.send_task(name, args=[1, 2], countdown=too_far)
        elif how == "positional":
            app.send_task(name, [1, 2], None, too_far)
        else:
            app.send_task(name, eta=datetime.now(UTC) + timedelta(seconds=too_far))


def test_signatures_are_guarded_too() -> None:
    with pytest.raises(InvalidArguments, match="delivered twice"):
        default.add.s(1, 2).apply_async(countdown=settings.broker_visibility_timeout)
