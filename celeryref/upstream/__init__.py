"""Every change this project makes to Celery's and kombu's own classes, in one place.

Each module here subclasses or replaces one upstream class, was written against
the exact versions in :data:`PATCHED_FOR`, and is listed in :data:`PATCHES` with
the private or overridden members it relies on, the upstream issue, and per
finding of docs/RELIABILITY.md the control test showing the stock class still has
the defect. ``tests/unit/test_upstream.py`` fails when the installed versions
differ from :data:`PATCHED_FOR`, a listed member no longer exists, a class no longer
subclasses its upstream one, or a named control test is missing or does not use the
stock class, so an upgrade fails loudly instead of silently no longer applying a
fix. A finding that is behaviour we add rather than an upstream defect says so
(``"feature: ..."``); a defect without a control (``"none: ..."``) fails the test: its
fix must go, or a control must show it is needed.

Public extension points used as documented (``task_cls``, ``worker_consumer``,
``worker_pool``, ``Task.Request``) are how the changes are wired in; nothing is monkey-patched
except kombu's ``Transport.Channel`` and the ``MultiChannelPoller`` its transport builds
(:func:`install`).

Longer than 250 lines: :data:`PATCHES` is one table, one entry per change, so that an
upgrade is checked against every change in one place.
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
    #: The upstream class ours subclasses, ``module:Name``.
    upstream: str
    #: Upstream members it overrides or uses privately (``module:Class.member``, or
    #: ``module:name`` for a module-level name); each must still exist.
    relies_on: tuple[str, ...]
    #: Upstream issue or pull request per defect, or ``"none known"`` after a search.
    upstream_issue: str
    #: Per finding of docs/RELIABILITY.md it fixes: the control test that shows the
    #: stock class still has the defect (``path::test``, its docstring opens with
    #: ``Control (<finding>)``), or ``"none: <why>"`` where there is no such test.
    controls: dict[str, str]

    @property
    def findings(self) -> tuple[str, ...]:
        """The findings of docs/RELIABILITY.md this change fixes."""
        return tuple(self.controls)


#: Marks a finding in :attr:`Patch.controls` that has no control test.
NO_CONTROL = "none: "
#: Prefix of a finding that is behaviour we add, not an upstream defect: no stock class
#: can show a defect, so there is no control, only the test of our behaviour.
FEATURE = "feature: "

_TRANSPORT = "tests/integration/test_broker_transport.py"
_KEPT = "tests/integration/test_task_kept.py"
_BROKER = "tests/integration/test_broker_behaviour.py"
_WINDOW = "tests/integration/test_broker_window.py"

#: Every change, with what it relies on.
PATCHES: tuple[Patch, ...] = (
    Patch(
        ours="celeryref.upstream.redis_channel:Channel",
        upstream="kombu.transport.redis:Channel",
        relies_on=(
            "kombu.transport.redis:Transport.Channel",
            "kombu.transport.redis:Transport.client",
            "kombu.transport.redis:Channel.QoS",
            "kombu.transport.redis:Channel._connparams",
            "kombu.transport.redis:Channel._do_restore_message",
            "kombu.transport.redis:Channel.conn_or_acquire",
            "kombu.transport.redis:QoS.append",
            "kombu.transport.virtual.base:Message._raw",
            "kombu.transport.redis:Channel._put",
            "kombu.transport.redis:Channel._brpop_start",
            "kombu.transport.redis:Channel._brpop_read",
            "kombu.transport.redis:Channel._flush_brpop_reauth",
            "kombu.transport.redis:Channel._queue_cycle",
            "kombu.transport.redis:Channel._q_for_pri",
            "kombu.transport.redis:Channel._expires",
            "kombu.transport.redis:QoS._remove_from_indices",
            "kombu.transport.virtual.base:QoS.append",
            "kombu.transport.virtual.base:Channel._get_message_priority",
            "kombu.transport.virtual.base:Transport._deliver",
            "kombu.transport.virtual.base:Channel.prepare_message",
            "kombu.messaging:Producer._publish",
            # The riding acknowledgement (issue 15): the poller kombu builds by this
            # module-level name, its turn hooks, and the ack and close it takes over.
            "kombu.transport.redis:MultiChannelPoller",
            "kombu.transport.redis:MultiChannelPoller.on_poll_init",
            "kombu.transport.redis:MultiChannelPoller.on_poll_start",
            "kombu.transport.redis:MultiChannelPoller._channels",
            "kombu.transport.redis:QoS.ack",
            "kombu.transport.redis:Channel.close",
        ),
        upstream_issue=(
            "F12: https://github.com/celery/kombu/issues/582 (the same AttributeError in"
            " _connparams from a channel closed after its transport, kombu 3.0; closed);"
            " F13: none known; F9: https://github.com/celery/kombu/issues/305 (open: the"
            " BRPOP-to-unacked window when the consumer dies); F25: none known"
        ),
        controls={
            "F12": f"{_TRANSPORT}::test_kombus_own_channel_still_crashes_there",
            "F13": f"{_TRANSPORT}::test_kombus_own_channel_loses_the_message_there",
            "F9": f"{_WINDOW}::test_kombus_own_channel_loses_the_message_there",
            "F25": f"{_WINDOW}::test_kombus_own_channel_pushes_a_retried_publish_twice",
        },
    ),
    Patch(
        ours="celeryref.upstream.request:Request",
        upstream="celery.worker.request:Request",
        relies_on=(
            "celery.worker.request:Request.__init__",
            "celery.worker.request:Request.cancel",
            "celery.worker.request:Request.on_failure",
            "celery.worker.request:Request._request_dict",
            "celery.worker.request:Request._already_cancelled",
            "celery.worker.request:Request._already_revoked",
            "celery.worker.request:Request._announce_cancelled",
            "celery.worker.request:revoked_tasks",
        ),
        upstream_issue="none known (celery 5.7 worker/request.py: a terminated job is a revoke)",
        controls={
            "F15": f"{_KEPT}::test_celerys_own_request_revokes_it_there",
            "F22": FEATURE + "deliberate requeues are taken back from our own delivery"
            " guard (tests/integration/test_delivery_count.py)",
        },
    ),
    Patch(
        ours="celeryref.upstream.consumer:RecordingConsumer",
        upstream="celery.worker.consumer:Consumer",
        relies_on=(
            "celery.worker.consumer:Consumer.on_decode_error",
            "celery.worker.consumer:Consumer.on_unknown_task",
            "celery.worker.consumer:Consumer.on_unknown_message",
            "celery.worker.consumer:Consumer.on_invalid_task",
        ),
        upstream_issue="none (stock behaviour logs and drops refused messages by design)",
        controls={
            "F3": FEATURE + "Celery logs and acknowledges a refused message by design;"
            " recording it is behaviour we add (tests/integration/test_refused_messages.py)",
            "F20": "tests/integration/test_refused_messages.py"
            "::test_celerys_hooks_ack_before_a_record_could_keep_the_message",
        },
    ),
    Patch(
        ours="celeryref.upstream.events:BatchingConsumer",
        upstream="celery.worker.consumer:Consumer",
        relies_on=(
            "celery.worker.consumer:Consumer.on_send_event_buffered",
            "celery.worker.consumer:Consumer._flush_events",
            "celery.events.dispatcher:EventDispatcher.flush",
        ),
        upstream_issue="none known (Celery flushes its task-event buffer on every event)",
        controls={
            "P1": FEATURE + "events batched for throughput, not an upstream defect"
            " (tests/integration/test_event_batching.py)",
        },
    ),
    Patch(
        ours="celeryref.upstream.result_backend:RedisBackend",
        upstream="celery.backends.redis:RedisBackend",
        relies_on=(
            "celery.backends.base:BaseKeyValueStoreBackend._store_result",
            "celery.backends.base:Backend._get_result_meta",
            "celery.backends.redis:RedisBackend.ensure",
            "celery.backends.redis:RedisBackend.client",
            "celery.backends.redis:RedisBackend._MAX_STR_VALUE_SIZE",
        ),
        upstream_issue="none known (the read-then-write is Celery's guard against"
        " a duplicate overwriting a SUCCESS)",
        controls={
            "P2": "tests/integration/test_result_round_trip.py"
            "::test_control_celerys_backend_reads_then_writes_in_two_round_trips",
        },
    ),
    Patch(
        ours="celeryref.upstream.app:App",
        upstream="celery:Celery",
        relies_on=(
            "celery:Celery.send_task",
            "celery:Celery.tasks",
            "celery:Celery.AsyncResult",
            "celery:Celery._get_backend",
            "celery.app.backends:by_url",
        ),
        upstream_issue="F1: https://github.com/celery/celery/issues/7516 (open)",
        controls={
            "F1": f"{_BROKER}::test_celerys_own_send_task_puts_it_on_the_top_priority_there",
            "F6": FEATURE + "our own delivery guard, no upstream defect"
            " (tests/unit/test_delay_guard.py)",
            "F23": FEATURE + "delays that, with the task's time limit, outlast the visibility"
            " timeout go to the durable scheduler (tests/integration/test_deferred_tasks.py)",
        },
    ),
    Patch(
        ours="celeryref.reliability.task_base:BaseTask",
        upstream="celery.app.task:Task",
        relies_on=("celery.app.task:Task.retry", "celery.app.task:Task.Request"),
        upstream_issue="none known (Task.retry turns a failed publish into Reject(requeue=False))",
        controls={
            "F7": FEATURE + "the refusal comes from our own delivery guard; Celery's part"
            " (Task.retry turns any publish error into Reject(requeue=False)) is what the"
            " F15 control shows",
            "F15": f"{_KEPT}::test_celerys_own_task_drops_it_there",
        },
    ),
    Patch(
        ours="celeryref.upstream.thread_pool:TaskPool",
        upstream="celery.concurrency.thread:TaskPool",
        relies_on=(
            "celery.concurrency.thread:TaskPool.on_apply",
            "celery.concurrency.thread:TaskPool.executor",
            "celery.concurrency.thread:ApplyResult",
            "celery.concurrency.base:apply_target",
            "celery.concurrency.base:BasePool.terminate_job",
            "celery.worker.request:Request.on_timeout",
            "celery.worker.request:Request.cancel",
        ),
        upstream_issue=(
            "F24: https://github.com/celery/celery/issues/9203 (closed, not fixed); F26: none known"
        ),
        controls={
            "F24": "tests/integration/test_thread_time_limits.py"
            "::test_celerys_own_thread_pool_lets_it_succeed",
            "F26": "tests/integration/test_thread_time_limits.py"
            "::test_control_celerys_thread_pool_crashes_when_the_soft_shutdown_cancels",
        },
    ),
    Patch(
        ours="celeryref.upstream.prefork_pool:AsynPool",
        upstream="celery.concurrency.asynpool:AsynPool",
        relies_on=(
            "celery.concurrency.asynpool:AsynPool.destroy_queues",
            "celery.concurrency.asynpool:AsynPool.on_partial_read",
            "celery.concurrency.asynpool:AsynPool.register_with_event_loop",
            "celery.concurrency.asynpool:AsynPool.create_process_queues",
            "celery.concurrency.prefork:TaskPool.Pool",
        ),
        upstream_issue="F27: the family of https://github.com/celery/celery/issues/4185"
        " (workers hanging on IPC, closed); this path is not fixed in 5.7.0",
        controls={
            "F27": "tests/integration/test_prefork_pool.py"
            "::test_control_celerys_prefork_pool_watches_a_new_job_pipe_as_a_result_pipe",
        },
    ),
)


def install() -> None:
    """Apply the one change that is not wired through a Celery setting (idempotent)."""
    redis_channel.install()
