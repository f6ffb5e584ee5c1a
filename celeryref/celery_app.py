"""The Celery application (the ``-A`` entry point): settings applied, task modules listed.

No task code and no setting lives here. Every process (worker, beat, Flower,
client) builds its app from :func:`create_app`, so they all agree on queues,
serializers and limits: configuration in :mod:`celeryref.app.config`, task
discovery in :mod:`celeryref.app.discovery`, Celery/kombu changes in
:mod:`celeryref.upstream`.
"""

from __future__ import annotations

from celery import Celery

from celeryref import upstream
from celeryref.app.config import celery_config
from celeryref.app.discovery import task_modules
from celeryref.app.liveness import WorkerLiveness
from celeryref.settings import Settings, settings
from celeryref.upstream.app import App

# Workers must survive a broker restart (Celery 5.7 crashes in one reconnect path).
upstream.install()


def create_app(s: Settings = settings) -> Celery:
    """Build the Celery app for settings ``s``."""
    celery = App(
        "celeryref",
        include=task_modules(s.task_packages),
        task_cls="celeryref.reliability.task_base:BaseTask",
    )
    celery.conf.update(celery_config(s))
    # The proof of life the container healthcheck reads (a file, no broker round trip).
    celery.steps["consumer"].add(WorkerLiveness)
    # Worker-process resources (DB pool) and task logging hook in by signals.
    import celeryref.app.signals  # noqa: F401

    return celery


app = create_app()
