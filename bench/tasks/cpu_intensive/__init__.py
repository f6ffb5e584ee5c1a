"""Benchmark task of the ``cpu_intensive`` queue (:mod:`bench`)."""

from __future__ import annotations

from bench import work
from celeryref.celery_app import app

#: Burns N milliseconds of CPU time; returns ``[start, end]``: the CPU backlog.
burn_cpu = app.task(name=f"{__name__}.burn_cpu")(work.burn_cpu)
