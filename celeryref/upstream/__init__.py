"""Every change this project makes to Celery's and kombu's own classes, in one place.

Each module here subclasses or replaces one upstream class, was written against
the exact versions in :data:`PATCHED_FOR`, and is listed in :data:`PATCHES` with
the private or overridden members it relies on and the finding it fixes
(docs/RELIABILITY.md). ``tests/unit/test_upstream.py`` fails when the installed
versions differ from :data:`PATCHED_FOR` or a listed member no longer exists, so an
upgrade fails loudly instead of silently no longer applying a fix; the control
tests named in each entry show the stock class still has the defect.

Public extension points used as documented (``task_cls``, ``worker_consumer``,
``Task.Request``) are how the changes are wired in; nothing is monkey-patched
except kombu's ``Transport.Channel`` (:func:`install`).
"""

from __future__ import annotations

from dataclasses import dataclass

from celeryref.upstream import redis_channel

#: The upstream releases every change here was written and tested against.
PATCHED_FOR: dict[str, str] = {"celery": "5.7.0", "kombu": "5.7.0"}


@dataclass(frozen=True)
class Patch:
    """One change to an upstream class."""

    #: Our class, ``module:Name``.
    ours: str
    #: Upstream members it overrides or calls privately (``module:Class.member``);
    #: each must still exist in the installed version.
    relies_on: tuple[str, ...]
    #: Findings of docs/RELIABILITY.md it fixes.
    findings: tuple[str, ...]
    #: Upstream issue or pull request it works around, where one is known.
    upstream_issue: str
    #: The test that shows the stock class has the defect (the control).
    control_test: str


#: Every change, with what it relies on.
PATCHES: tuple[Patch, ...] = (
    Patch(
        ours="celeryref.upstream.redis_channel:Channel",
        relies_on=(
            "kombu.transport.redis:Transport.Channel",
            "kombu.transport.redis:Channel.QoS",
            "kombu.transport.redis:Channel._connparams",
            "kombu.transport.redis:Channel._do_restore_message",
            "kombu.transport.redis:Channel.conn_or_acquire",
            "kombu.transport.redis:QoS.append",
        ),
        findings=("F12", "F13"),
        upstream_issue="none known (kombu 5.7 transport/redis.py: QoS.append after BRPOP)",
        control_test="tests/integration/test_broker_transport.py",
    ),
    Patch(
        ours="celeryref.upstream.request:Request",
        relies_on=(
            "celery.worker.request:Request.cancel",
            "celery.worker.request:Request.on_failure",
            "celery.worker.request:Request._already_cancelled",
            "celery.worker.request:Request._already_revoked",
            "celery.worker.request:Request._announce_cancelled",
            "celery.worker.request:revoked_tasks",
        ),
        findings=("F2", "F15"),
        upstream_issue="none known (celery 5.7 worker/request.py: cancel terminates the job)",
        control_test="tests/integration/test_task_kept.py",
    ),
    Patch(
        ours="celeryref.upstream.consumer:RecordingConsumer",
        relies_on=(
            "celery.worker.consumer:Consumer.on_decode_error",
            "celery.worker.consumer:Consumer.on_unknown_task",
            "celery.worker.consumer:Consumer.on_unknown_message",
            "celery.worker.consumer:Consumer.on_invalid_task",
        ),
        findings=("F3",),
        upstream_issue="none (stock behaviour logs and drops refused messages by design)",
        control_test="tests/integration/test_refused_messages.py",
    ),
    Patch(
        ours="celeryref.upstream.app:App",
        relies_on=("celery:Celery.send_task",),
        findings=("F1",),
        upstream_issue="none (Celery applies task_default_priority in Task.apply_async only)",
        control_test="tests/integration/test_broker_behaviour.py",
    ),
    Patch(
        ours="celeryref.reliability.task_base:BaseTask",
        relies_on=("celery.app.task:Task.retry",),
        findings=("F15",),
        upstream_issue="none (Task.retry turns a failed publish into Reject(requeue=False))",
        control_test="tests/integration/test_task_kept.py",
    ),
)


def install() -> None:
    """Apply the one change that is not wired through a Celery setting (idempotent)."""
    redis_channel.install()
