"""Every setting of the deployment, parsed once from the environment, typed.

Import :data:`settings` (or call :func:`load_settings` with an explicit mapping in
tests). Nothing else in the package reads ``os.environ`` for configuration.

Outside development (``APP_ENV`` other than ``development``/``test``) placeholder
secrets are refused at start-up, so a production stack can never run on the
passwords committed in ``.env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from celeryref import queues
from celeryref.alerts.model import AlertConfig

#: Values that mark a secret as "not chosen yet"; refused outside development.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "changethis", "password", "secret"})

#: Environments in which placeholder secrets are tolerated.
DEVELOPMENT_ENVS = frozenset({"development", "test"})


class SettingsError(ValueError):
    """The environment describes a configuration that must not start."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Typed view of the environment. Defaults suit ``docker compose up``."""

    #: ``development``, ``test`` or ``production``; decides whether placeholder
    #: secrets are accepted.
    app_env: str = "development"

    redis_host: str = "redis"
    redis_port: int = 6379
    redis_password: str = "changeme"  # noqa: S105 - dev placeholder
    #: Redis database holding the broker's queues.
    redis_broker_db: int = 0
    #: Redis database holding task results (kept apart so a FLUSHDB of results
    #: can never drop queued work).
    redis_result_db: int = 1
    #: Redis database for the application's own keys (locks, guards, breakers).
    redis_state_db: int = 2

    postgres_host: str = "postgres"
    postgres_port: int = 5432
    postgres_user: str = "celeryref"
    postgres_password: str = "changeme"  # noqa: S105 - dev placeholder
    postgres_db: str = "celeryref"
    #: Connections opened per worker process at init (SPEC F4).
    db_pool_min: int = 1
    #: Upper bound of connections per worker process; a thread-pool worker
    #: needs up to its concurrency.
    db_pool_max: int = 4

    #: Timezone of crontab schedules (beat); stored times are always UTC.
    timezone: str = "UTC"
    #: Seconds a task result is kept in the result backend.
    result_expires: int = 86_400
    #: Seconds before ``SoftTimeLimitExceeded`` is raised inside a task.
    task_soft_time_limit: int = 270
    #: Seconds before the pool process running a task is killed.
    task_time_limit: int = 300
    #: Seconds an unacknowledged (``acks_late``) message stays reserved before
    #: Redis redelivers it to another worker; must exceed every time limit and
    #: every countdown/ETA, or a task runs twice.
    broker_visibility_timeout: int = 3_600
    #: Times a message may be delivered before it is refused as a redelivery
    #: loop (a task that keeps killing its worker process).
    max_deliveries: int = 3
    #: Seconds a stopping worker lets running tasks finish (Celery's soft shutdown,
    #: entered on SIGTERM because the workers run with ``REMAP_SIGTERM=SIGQUIT``);
    #: tasks still running then are cancelled and their messages requeued at once.
    #: Keep it below the container's stop grace period (``WORKER_STOP_GRACE_PERIOD``).
    worker_soft_shutdown_timeout: float = 60.0
    #: Seconds a blocking Redis command (a publish, a result read) may wait before
    #: it fails instead of hanging on a broker that stopped answering.
    redis_socket_timeout: float = 5.0
    #: Retries of a publish or result-store call that could not reach Redis; each
    #: attempt may wait ``redis_socket_timeout``. Low for clients (the API answers 503
    #: soon), Celery's 20 for workers (they ride out a Redis restart instead).
    redis_max_retries: int = 1
    #: Retries of a whole result write or read (Celery's ``result_backend_always_retry``)
    #: that could not reach Redis. Celery 5.7 reads the stored state before it writes a
    #: result, and that read is outside kombu's retry policy: without these a task that
    #: succeeded while Redis restarted was recorded FAILURE. 0 for clients (the API
    #: answers 503 at once); workers ride out a restart (compose: 20).
    result_store_retries: int = 0
    #: A pool process is replaced after this many tasks.
    worker_max_tasks_per_child: int = 1_000
    #: A pool process is replaced after its resident memory exceeds this (KiB).
    worker_max_memory_per_child_kib: int = 262_144

    #: Seconds between runs of the ``beat_heartbeat`` job (SPEC F2: 30 s).
    beat_heartbeat_seconds: float = 30.0
    #: Seconds between ``health_check`` runs fired by beat (SPEC F2: 5 min).
    health_check_seconds: float = 300.0
    #: Seconds the single-beat lock lives without renewal; a crashed beat is
    #: replaced after at most this long.
    beat_lock_ttl: int = 60

    #: Where generated reports are written (a volume in compose).
    report_dir: str = "/var/lib/celeryref/reports"
    #: Where the image pipeline "uploads" resized images (a volume in compose).
    image_dir: str = "/var/lib/celeryref/images"

    #: Flower's ``user:password`` (``FLOWER_BASIC_AUTH``, set for the flower
    #: service only); its password is checked like the other secrets.
    flower_basic_auth: str = ""

    #: Bearer token required by the API's mutating endpoints (``API_TOKEN``).
    api_token: str = "changeme"  # noqa: S105 - dev placeholder
    #: Largest request body (bytes) the API reads; larger gets 413.
    api_max_body_bytes: int = 65_536

    #: Where operator alerts go (``ALERT_WEBHOOK_URL``, ``SMTP_HOST``/``SMTP_PORT``,
    #: ``ALERT_EMAIL_FROM``, ``ALERT_EMAIL_TO``); no channel = a logged warning.
    alerts: AlertConfig = field(default_factory=AlertConfig)

    #: ``FAULT_INJECTION=1`` lets the fault drills (``devtools.tasks.default.drills``)
    #: run; only the fault suite's compose override sets it.
    fault_injection: bool = False

    #: Task packages imported and routed besides :data:`celeryref.queues.TASK_PACKAGE`
    #: (``EXTRA_TASK_PACKAGES``, comma-separated), laid out the same way
    #: (``<package>.<queue>``). Empty in production; the benchmark and fault-suite
    #: overrides add ``bench.tasks`` / ``devtools.tasks``.
    extra_task_packages: tuple[str, ...] = ()

    # -- derived -----------------------------------------------------------------

    @property
    def task_packages(self) -> tuple[str, ...]:
        """Every package whose ``<package>.<queue>`` modules hold tasks, product first."""
        return (queues.TASK_PACKAGE, *self.extra_task_packages)

    def _redis_url(self, db: int) -> str:
        password = quote(self.redis_password, safe="")
        return f"redis://:{password}@{self.redis_host}:{self.redis_port}/{db}"

    @property
    def broker_url(self) -> str:
        return self._redis_url(self.redis_broker_db)

    @property
    def result_backend_url(self) -> str:
        return self._redis_url(self.redis_result_db)

    @property
    def state_redis_url(self) -> str:
        return self._redis_url(self.redis_state_db)

    @property
    def database_dsn(self) -> str:
        user = quote(self.postgres_user, safe="")
        password = quote(self.postgres_password, safe="")
        return (
            f"postgresql://{user}:{password}@{self.postgres_host}:"
            f"{self.postgres_port}/{self.postgres_db}"
        )

    @property
    def is_development(self) -> bool:
        return self.app_env in DEVELOPMENT_ENVS

    def validate(self) -> Settings:
        """Refuse combinations that lose or duplicate work; return ``self``."""
        if not 0 < self.task_soft_time_limit < self.task_time_limit:
            raise SettingsError(
                "TASK_SOFT_TIME_LIMIT must be positive and below TASK_TIME_LIMIT "
                f"({self.task_soft_time_limit} >= {self.task_time_limit})"
            )
        if self.task_time_limit >= self.broker_visibility_timeout:
            raise SettingsError(
                "TASK_TIME_LIMIT must be below BROKER_VISIBILITY_TIMEOUT, or Redis "
                "redelivers a task that is still running "
                f"({self.task_time_limit} >= {self.broker_visibility_timeout})"
            )
        if (
            self.worker_soft_shutdown_timeout < 0
            or self.redis_socket_timeout <= 0
            or self.redis_max_retries < 0
            or self.result_store_retries < 0
        ):
            raise SettingsError(
                "WORKER_SOFT_SHUTDOWN_TIMEOUT, REDIS_MAX_RETRIES and RESULT_STORE_RETRIES "
                "must be >= 0, "
                "REDIS_SOCKET_TIMEOUT > 0"
            )
        if self.max_deliveries < 1:
            raise SettingsError("MAX_DELIVERIES must be at least 1")
        if not self.is_development:
            secrets = [
                ("REDIS_PASSWORD", self.redis_password),
                ("POSTGRES_PASSWORD", self.postgres_password),
                ("API_TOKEN", self.api_token),
            ]
            if self.flower_basic_auth:
                secrets.append(("FLOWER_PASSWORD", self.flower_basic_auth.partition(":")[2]))
            for name, value in secrets:
                if value.lower() in PLACEHOLDER_SECRETS:
                    raise SettingsError(
                        f"{name} is a placeholder; set a real secret when APP_ENV={self.app_env!r}"
                    )
        return self


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build validated :class:`Settings` from ``env`` (default: ``os.environ``)."""
    e = os.environ if env is None else env
    d = Settings()
    return Settings(
        app_env=e.get("APP_ENV", d.app_env),
        redis_host=e.get("REDIS_HOST", d.redis_host),
        redis_port=_int(e, "REDIS_PORT", d.redis_port),
        redis_password=e.get("REDIS_PASSWORD", d.redis_password),
        redis_broker_db=_int(e, "REDIS_BROKER_DB", d.redis_broker_db),
        redis_result_db=_int(e, "REDIS_RESULT_DB", d.redis_result_db),
        redis_state_db=_int(e, "REDIS_STATE_DB", d.redis_state_db),
        postgres_host=e.get("POSTGRES_HOST", d.postgres_host),
        postgres_port=_int(e, "POSTGRES_PORT", d.postgres_port),
        postgres_user=e.get("POSTGRES_USER", d.postgres_user),
        postgres_password=e.get("POSTGRES_PASSWORD", d.postgres_password),
        postgres_db=e.get("POSTGRES_DB", d.postgres_db),
        db_pool_min=_int(e, "DB_POOL_MIN", d.db_pool_min),
        db_pool_max=_int(e, "DB_POOL_MAX", d.db_pool_max),
        timezone=e.get("CELERY_TIMEZONE", d.timezone),
        result_expires=_int(e, "RESULT_EXPIRES", d.result_expires),
        task_soft_time_limit=_int(e, "TASK_SOFT_TIME_LIMIT", d.task_soft_time_limit),
        task_time_limit=_int(e, "TASK_TIME_LIMIT", d.task_time_limit),
        broker_visibility_timeout=_int(e, "BROKER_VISIBILITY_TIMEOUT", d.broker_visibility_timeout),
        max_deliveries=_int(e, "MAX_DELIVERIES", d.max_deliveries),
        worker_soft_shutdown_timeout=_float(
            e, "WORKER_SOFT_SHUTDOWN_TIMEOUT", d.worker_soft_shutdown_timeout
        ),
        redis_socket_timeout=_float(e, "REDIS_SOCKET_TIMEOUT", d.redis_socket_timeout),
        redis_max_retries=_int(e, "REDIS_MAX_RETRIES", d.redis_max_retries),
        result_store_retries=_int(e, "RESULT_STORE_RETRIES", d.result_store_retries),
        worker_max_tasks_per_child=_int(
            e, "WORKER_MAX_TASKS_PER_CHILD", d.worker_max_tasks_per_child
        ),
        worker_max_memory_per_child_kib=_int(
            e, "WORKER_MAX_MEMORY_PER_CHILD_KIB", d.worker_max_memory_per_child_kib
        ),
        beat_heartbeat_seconds=_float(e, "BEAT_HEARTBEAT_SECONDS", d.beat_heartbeat_seconds),
        health_check_seconds=_float(e, "HEALTH_CHECK_SECONDS", d.health_check_seconds),
        beat_lock_ttl=_int(e, "BEAT_LOCK_TTL", d.beat_lock_ttl),
        report_dir=e.get("REPORT_DIR", d.report_dir),
        image_dir=e.get("IMAGE_DIR", d.image_dir),
        flower_basic_auth=e.get("FLOWER_BASIC_AUTH", d.flower_basic_auth),
        api_token=e.get("API_TOKEN", d.api_token),
        api_max_body_bytes=_int(e, "API_MAX_BODY_BYTES", d.api_max_body_bytes),
        alerts=AlertConfig.from_env(e),
        fault_injection=e.get("FAULT_INJECTION", "0") == "1",
        extra_task_packages=tuple(
            name.strip() for name in e.get("EXTRA_TASK_PACKAGES", "").split(",") if name.strip()
        ),
    ).validate()


#: The process-wide settings, read once at import.
settings = load_settings()
