"""Celery's configuration, derived from :class:`~celeryref.settings.Settings`.

Every Celery setting the deployment changes is here, each with the reason; the
values come from the one settings object, so no setting name is listed twice.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from celeryref import queues
from celeryref.app import single_beat
from celeryref.app.beat_schedule import beat_schedule
from celeryref.reliability import put_once
from celeryref.settings import Settings
from celeryref.upstream import redis_channel


def celery_config(s: Settings) -> dict[str, Any]:
    """Celery settings derived from :class:`~celeryref.settings.Settings`."""
    retry_policy: dict[str, Any] = {
        "max_retries": s.redis_max_retries,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    }
    return {
        "broker_url": s.broker_url,
        "result_backend": s.result_backend_url,
        # TLS to Redis (REDIS_TLS): certificate and host name verified; redbeat reads
        # broker_use_ssl too. Without them kombu accepts any certificate for rediss://.
        "broker_use_ssl": s.redis_ssl_options,
        "redis_backend_use_ssl": s.redis_ssl_options,
        # Never pickle: a message must not be able to run code on deserialization.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "enable_utc": True,
        "timezone": s.timezone,
        "result_expires": s.result_expires,
        # Store name, args and queue with the result so status views can show them.
        "result_extended": True,
        # Queues are declared here only: a typo in a route fails loudly.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in queues.ALL_QUEUES
        ],
        "task_default_queue": queues.DEFAULT,
        "task_default_exchange": queues.DEFAULT,
        "task_default_routing_key": queues.DEFAULT,
        "task_create_missing_queues": False,
        "task_routes": queues.task_routes(s.task_packages),
        # kombu defaults an unset priority to 0, the *highest* on Redis.
        "task_default_priority": queues.PRIORITY_NORMAL,
        "task_queue_max_priority": max(queues.PRIORITY_STEPS),
        "broker_transport_options": {
            "visibility_timeout": s.broker_visibility_timeout,
            "priority_steps": list(queues.PRIORITY_STEPS),
            "sep": queues.PRIORITY_SEP,
            # A Redis that stops answering (paused, half-open TCP) fails a publish
            # after this long instead of hanging the caller (kombu waits forever).
            "socket_timeout": s.redis_socket_timeout,
            "socket_connect_timeout": s.redis_socket_timeout,
            # How long a publish's id is kept, so that kombu's retry of a publish
            # whose reply was lost does not push it twice (F25).
            redis_channel.PUT_ONCE_OPTION: put_once.seconds_for(
                s.redis_max_retries, s.redis_socket_timeout, retry_policy["interval_max"]
            ),
        },
        # Each attempt may wait socket_timeout: few attempts bound a client's publish
        # to a frozen Redis (Celery's defaults, 4 publish attempts and 21 result-store
        # attempts of up to 5 s each, held an API request for about 2 minutes).
        "task_publish_retry_policy": retry_policy,
        "result_backend_transport_options": {"retry_policy": retry_policy},
        # Retry a whole result write/read, not only kombu's part of it: Celery 5.7
        # reads the stored state first, outside the retry policy above (F16).
        "result_backend_always_retry": s.result_store_retries > 0,
        "result_backend_max_retries": s.result_store_retries,
        "result_backend_max_sleep_between_retries_ms": 1000,
        "redis_socket_timeout": s.redis_socket_timeout,
        "redis_socket_connect_timeout": s.redis_socket_timeout,
        "broker_connection_retry_on_startup": True,
        # With acks_late a task interrupted by a lost connection is redelivered;
        # stop it here instead of letting two copies run. (Requests received but
        # not started are left alone: celeryref.upstream.request.Request.cancel.)
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # SIGTERM (REMAP_SIGTERM=SIGQUIT in compose) gives running tasks this long,
        # then cancels the rest and requeues their messages at once, before
        # Docker's SIGKILL could strand them for the visibility timeout.
        "worker_soft_shutdown_timeout": s.worker_soft_shutdown_timeout,
        # Long tasks: acknowledge after the task ran, reserve one message per
        # process, so a crash redelivers the task and nothing waits behind it.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "task_soft_time_limit": s.task_soft_time_limit,
        "task_time_limit": s.task_time_limit,
        "worker_max_tasks_per_child": s.worker_max_tasks_per_child,
        "worker_max_memory_per_child": s.worker_max_memory_per_child_kib,
        # Prefork (also what `--pool prefork` selects) without the hang after a
        # reconnect that a pool process killed with a job left behind (F27).
        "worker_pool": "celeryref.upstream.prefork_pool:TaskPool",
        # Refused messages (pickle, unknown task) are also dead-lettered.
        "worker_consumer": "celeryref.upstream.consumer:RecordingConsumer",
        # Worker events feed Flower; a client's task-sent event doubles the cost of
        # a publish and only lists tasks in Flower before they are received (opt in).
        "worker_send_task_events": True,
        "task_send_sent_event": s.task_sent_events,
        "beat_schedule": beat_schedule(s),
        # Exactly one beat; schedule and lock in the state Redis DB (single_beat.py).
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "redbeat_redis_url": s.state_redis_url,
        "redbeat_redis_options": {
            "socket_timeout": s.redis_socket_timeout,
            "socket_connect_timeout": s.redis_socket_timeout,
            "health_check_interval": 30,
        },
        "redbeat_key_prefix": single_beat.KEY_PREFIX,
        "redbeat_lock_key": single_beat.LOCK_KEY,
        "redbeat_lock_timeout": s.beat_lock_ttl,
        # Wake at least this often (seconds) so the lock is extended well within
        # its TTL; a standby tries to take it as often.
        "beat_max_loop_interval": max(1.0, s.beat_lock_ttl / 4),
    }
