"""Benchmark tasks of the ``default`` queue (:mod:`bench`): tiny, no side effects."""

from __future__ import annotations

from bench import work
from celeryref.celery_app import app

#: A message and nothing else; no result stored.
noop = app.task(name=f"{__name__}.noop", ignore_result=True)(work.noop)
#: Returns the time it ran (seconds): round trips, chord headers.
stamp = app.task(name=f"{__name__}.stamp")(work.stamp)
#: Sleeps N seconds; returns ``[start, end]``: the head-of-line mix.
sleep_stamp = app.task(name=f"{__name__}.sleep_stamp")(work.sleep_stamp)
#: Chord body: ``[start, header count]``.
fan_in = app.task(name=f"{__name__}.fan_in")(work.fan_in)
