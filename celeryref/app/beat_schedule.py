"""The periodic schedule (SPEC F2). Crontab times are in ``settings.timezone``."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab, schedule

from celeryref import queues
from celeryref.settings import Settings

SCHEDULED = f"{queues.TASK_PACKAGE}.scheduled"


def beat_schedule(s: Settings) -> dict[str, dict[str, Any]]:
    """Entries for ``beat_schedule``; intervals that tests shorten come from ``s``."""
    return {
        "cleanup-expired-sessions-hourly": {
            "task": f"{SCHEDULED}.cleanup_expired_sessions",
            "schedule": crontab(minute=0),
        },
        "daily-report-0200": {
            "task": f"{SCHEDULED}.daily_report",
            "schedule": crontab(hour=2, minute=0),
        },
        "health-check": {
            "task": f"{queues.TASK_PACKAGE}.priority.health_check",
            "schedule": schedule(s.health_check_seconds),
            "options": {"queue": queues.PRIORITY, "priority": queues.PRIORITY_TOP},
        },
        "beat-heartbeat": {
            "task": f"{SCHEDULED}.beat_heartbeat",
            "schedule": schedule(s.beat_heartbeat_seconds),
            "args": ("beat",),
            "kwargs": {"note": "30-second job with args and kwargs"},
            # A missed heartbeat is worthless later: drop it after one interval.
            "options": {"expires": s.beat_heartbeat_seconds},
        },
        "outbox-sweep": {
            "task": f"{SCHEDULED}.outbox.sweep_outbox",
            "schedule": schedule(s.outbox_sweep_seconds),
            # A sweep that waited one interval is superseded by the next one.
            "options": {"expires": s.outbox_sweep_seconds},
        },
        # Tasks due further ahead than Redis can hold them, published when due (F23).
        "publish-deferred-tasks": {
            "task": f"{SCHEDULED}.deferred.publish_deferred_tasks",
            "schedule": schedule(s.deferred_sweep_seconds),
            "options": {"expires": s.deferred_sweep_seconds},
        },
        "weekly-summary-monday-0900": {
            "task": f"{SCHEDULED}.weekly_summary",
            "schedule": crontab(hour=9, minute=0, day_of_week="mon"),
        },
        "monthly-archive-1st-0000": {
            "task": f"{SCHEDULED}.monthly_archive",
            "schedule": crontab(hour=0, minute=0, day_of_month=1),
        },
        # Dead letters kept in Redis while Postgres was away go into the store (F21).
        "drain-unrecorded-dead-letters": {
            "task": f"{SCHEDULED}.dead_letters.drain_unrecorded",
            "schedule": schedule(60.0),
            "options": {"expires": 60.0},
        },
    }
