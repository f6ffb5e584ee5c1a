"""Benchmark task of the ``priority`` queue (:mod:`bench`)."""

from __future__ import annotations

from bench import work
from celeryref.celery_app import app

#: Returns the time it ran (seconds): priority latency under a CPU backlog.
ping = app.task(name=f"{__name__}.ping")(work.stamp)
