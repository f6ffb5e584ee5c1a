"""F25: what makes a publish id new per publish and the same across kombu's retries of it."""

from __future__ import annotations

from celery.signals import before_task_publish

import celeryref.celery_app  # noqa: F401 (connects the signal receivers)
from celeryref.reliability import put_once


def test_every_publish_gets_a_new_id_even_when_its_headers_carry_an_old_one() -> None:
    """A Celery retry copies the request's headers, the old publish id included: kept, the
    retry would be taken for a retry of the first publish and dropped."""
    headers = {put_once.HEADER: "the-first-publish", "id": "t"}
    put_once.stamp(headers)
    first = headers[put_once.HEADER]
    put_once.stamp(headers)
    assert "the-first-publish" != first != headers[put_once.HEADER]


def test_the_stamp_runs_on_every_task_publish() -> None:
    receivers = [receiver for _, receiver in before_task_publish.receivers]  # weak=False
    assert put_once.stamp in receivers, "put_once.stamp is not a before_task_publish receiver"


def test_a_message_without_an_id_is_pushed_as_kombu_pushes_it() -> None:
    assert put_once.put_id({"headers": {}}) is None
    assert put_once.put_id({"headers": None}) is None
    assert put_once.put_id({"headers": {put_once.HEADER: "x"}}) == "x"


def test_the_id_outlives_the_publishs_whole_retry_window() -> None:
    """20 attempts of up to 5 s + 1 s between them: 126 s, plus a minute."""
    assert put_once.seconds_for(20, 5.0, 1.0) == 186
