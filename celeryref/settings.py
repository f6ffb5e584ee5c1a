"""Every setting of the deployment, parsed once from the environment, typed.

Import :data:`settings` (or call :func:`load_settings` with an explicit mapping in
tests). Nothing else in the package reads ``os.environ`` for configuration.

Why pydantic-settings: each setting is written down once. A field's name *is* its
environment variable (``redis_host`` <- ``REDIS_HOST``, matched case-insensitively);
its annotation parses and bounds-checks the value; only a variable named otherwise
carries a ``validation_alias`` (``CELERY_TIMEZONE``). Derived from the fields, never
read on their own: the Redis and Postgres URLs, :attr:`Settings.task_packages` and
:attr:`Settings.alerts`. Empty variables (compose's ``${X:-}``) count as unset;
comma-separated lists (``EXTRA_TASK_PACKAGES``, ``ALERT_EMAIL_TO``) are split, not
JSON-decoded. Secrets are ``SecretStr``: a repr, a log line or an error shows
``**********``; only the URL builders, the placeholder check and the API's token check
unwrap them.

Outside development (``APP_ENV`` other than ``development``/``test``) placeholder
and short secrets are refused at start-up, so a production stack can never run on the
passwords committed in ``.env``; a secret a process is not given is empty there, never
the development placeholder. Each secret may instead be read from the file named by
``<VARIABLE>_FILE`` (a Compose secret under ``/run/secrets``; the postgres image's
convention), so it never shows in the container's environment. Every refusal is a
:class:`SettingsError` that names the environment variable.

Longer than 250 lines: it is the one list of every setting, each with its unit and
reason; split up, the settings would need a second list to find them.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote, urlencode

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticUseDefault
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from celeryref import queues

#: Words that mark a secret as "not chosen yet" (``.env``'s values among them); a secret
#: containing one is refused outside development.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "change_me", "changethis", "password", "secret", "example"}
)
#: Shortest secret accepted outside development (characters); the API token is
#: guessed over the network, so it needs more.
MIN_SECRET_LENGTH = 16
MIN_API_TOKEN_LENGTH = 24
#: Secrets that may be read from the file named by ``<VARIABLE>_FILE`` instead.
SECRET_VARIABLES = ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN", "FLOWER_BASIC_AUTH")

#: Seconds kept free below ``BROKER_VISIBILITY_TIMEOUT`` besides a task's delay and hard
#: time limit, for a worker to receive, start and acknowledge it (F23).
VISIBILITY_MARGIN_SECONDS = 60

#: Environments in which placeholder secrets are tolerated.
DEVELOPMENT_ENVS = frozenset({"development", "test"})


class SettingsError(ValueError):
    """The environment describes a configuration that must not start."""


@dataclass(frozen=True)
class AlertConfig:
    """Where operator alerts go (:attr:`Settings.alerts`; :mod:`celeryref.alerts` sends
    them). A channel is on when its settings are present."""

    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 1025
    sender: str = "celeryref@localhost"
    recipients: tuple[str, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels :func:`~celeryref.alerts.delivery.deliver` uses, in the order it
        tries them."""
        webhook = ("webhook",) if self.webhook_url else ()
        email = ("email",) if self.smtp_host and self.recipients else ()
        return webhook + email


def _tcp_port(port: int) -> int:
    if not 0 < port < 65_536:
        raise ValueError(f"must be a TCP port, got {port}")
    return port


def _blank_is_unset(value: Any) -> Any:
    """Strip a string; a blank one leaves the field at its default."""
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise PydanticUseDefault
    return value


def _comma_list(value: Any) -> Any:
    """``"a, b,,c"`` -> ``("a", "b", "c")``."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


Port = Annotated[int, AfterValidator(_tcp_port)]
#: A string whose surrounding blanks are dropped; blank = unset.
Text = Annotated[str, BeforeValidator(_blank_is_unset)]
#: A comma-separated variable (``NoDecode``: not read as JSON).
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]
#: libpq's ``sslmode`` values.
PostgresSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class Settings(BaseSettings):
    """Typed view of the environment. Defaults suit ``docker compose up``."""

    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True)

    #: ``development``, ``test`` or ``production``; decides whether placeholder
    #: secrets are accepted.
    app_env: str = "development"

    redis_host: str = "redis"
    redis_port: Port = 6379
    redis_password: SecretStr = SecretStr("changeme")
    #: Redis ACL user of this process's role (``worker``, ``api``, ``beat``, ``flower``:
    #: docker/prod/redis-users.acl); unset: the ``default`` user (development).
    redis_username: Text | None = None
    #: Redis database holding the broker's queues.
    redis_broker_db: NonNegativeInt = 0
    #: Redis database holding task results (kept apart so a FLUSHDB of results
    #: can never drop queued work).
    redis_result_db: NonNegativeInt = 1
    #: Redis database for the application's own keys (locks, guards, breakers).
    redis_state_db: NonNegativeInt = 2
    #: Connect to Redis over TLS (``rediss://``), verifying its certificate and host name
    #: (every client: broker, results, beat, state); a worker on another host needs it.
    redis_tls: bool = False
    #: CA bundle (PEM) that signed the Redis server's certificate; unset: the system's CAs.
    redis_tls_ca_file: Text | None = None

    postgres_host: str = "postgres"
    postgres_port: Port = 5432
    postgres_user: str = "celeryref"
    postgres_password: SecretStr = SecretStr("changeme")
    postgres_db: str = "celeryref"
    #: libpq's ``sslmode``: ``verify-full`` for a database reached over a network (TLS,
    #: certificate and host name checked); unset: libpq's default (``prefer``, unverified).
    postgres_sslmode: PostgresSslMode | None = None
    #: CA bundle (PEM) libpq checks the server's certificate against (``sslrootcert``;
    #: ``system``: the system's CAs); needs ``POSTGRES_SSLMODE`` ``verify-ca``/``verify-full``.
    postgres_sslrootcert: Text | None = None
    #: Connections opened per worker process at init (SPEC F4).
    db_pool_min: int = 1
    #: Upper bound of connections per worker process; a thread-pool worker
    #: needs up to its concurrency.
    db_pool_max: int = 4
    #: Seconds a thread waits for a free pooled connection before it gets
    #: ``DatabaseUnavailable`` (a task retries; the API answers 503 + ``Retry-After``).
    db_pool_timeout: PositiveFloat = 5.0

    #: Timezone of crontab schedules (beat); stored times are always UTC.
    timezone: str = Field("UTC", validation_alias="CELERY_TIMEZONE")
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
    max_deliveries: Annotated[int, Field(ge=1)] = 3
    #: Seconds a stopping worker lets running tasks finish (Celery's soft shutdown,
    #: entered on SIGTERM because the workers run with ``REMAP_SIGTERM=SIGQUIT``);
    #: tasks still running then are cancelled and their messages requeued at once.
    #: Keep it below the container's stop grace period (``WORKER_STOP_GRACE_PERIOD``).
    worker_soft_shutdown_timeout: NonNegativeFloat = 60.0
    #: Seconds a blocking Redis command (a publish, a result read) may wait before
    #: it fails instead of hanging on a broker that stopped answering.
    redis_socket_timeout: PositiveFloat = 5.0
    #: Seconds between two writes of a process's task metrics and history to Redis
    #: (one round trip per interval instead of one per task; issue 15).
    stats_flush_interval: PositiveFloat = 1.0
    #: Clients publish a ``task-sent`` event with every task (Celery's
    #: ``task_send_sent_event``): Flower then lists a task before a worker received
    #: it, at the price of a second publish per task. Off: tasks appear in Flower when
    #: received (worker events stay on).
    task_sent_events: bool = False
    #: Seconds a worker holds a task event so the events of many tasks go out in one
    #: publish (:mod:`celeryref.upstream.events`); 0 publishes each at once (Celery's way).
    task_events_flush_interval: NonNegativeFloat = 0.1
    #: Retries of a publish or result-store call that could not reach Redis; each
    #: attempt may wait ``redis_socket_timeout``. Low for clients (the API answers 503
    #: soon), Celery's 20 for workers (they ride out a Redis restart instead).
    redis_max_retries: NonNegativeInt = 1
    #: Retries of a whole result write or read (Celery's ``result_backend_always_retry``)
    #: that could not reach Redis. Celery 5.7 reads the stored state before it writes a
    #: result, and that read is outside kombu's retry policy: without these a task that
    #: succeeded while Redis restarted was recorded FAILURE. 0 for clients (the API
    #: answers 503 at once); workers ride out a restart (compose: 20).
    result_store_retries: NonNegativeInt = 0
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
    #: Seconds between sweeps of the durable scheduler fired by beat (F23): a task sent
    #: further ahead than Redis can hold runs at most this long after it is due.
    deferred_sweep_seconds: PositiveFloat = 10.0
    #: Seconds between outbox sweeps fired by beat (F17: republish what was committed
    #: but never published, reduce map-reduce jobs stuck with every partial stored).
    outbox_sweep_seconds: PositiveFloat = 30.0
    #: Seconds a committed submission or queued step may stay unpublished before the
    #: sweep publishes it; must exceed a publish's worst case (client retries x
    #: ``redis_socket_timeout``), or the sweep races a live publisher.
    outbox_grace_seconds: PositiveFloat = 60.0
    #: Seconds a map-reduce job with every partial stored may wait for its reducer
    #: before the sweep sends one (longer than a reduce takes).
    outbox_stuck_seconds: PositiveFloat = 300.0

    #: Where generated reports are written (a volume in compose).
    report_dir: str = "/var/lib/celeryref/reports"
    #: Where the image pipeline "uploads" resized images (a volume in compose).
    image_dir: str = "/var/lib/celeryref/images"

    #: Flower's ``user:password`` (set for the flower service only); its password is
    #: checked like the other secrets, as ``FLOWER_PASSWORD``.
    flower_basic_auth: SecretStr = SecretStr("")

    #: Bearer token required by the API's mutating endpoints.
    api_token: SecretStr = SecretStr("changeme")
    #: Largest request body (bytes) the API reads; larger gets 413.
    api_max_body_bytes: int = 65_536
    #: Request threads of the API process (AnyIO's limiter, 40 by default; sync routes
    #: run in them). Fewer threads leave the event loop (``/healthz``, ``/workers``)
    #: more of the GIL: 200 flooding clients on the 2-core stack, /healthz p99 593 ms
    #: with 16 threads, 456 ms with 8, same throughput (tests/stack/test_api_load.py).
    #: Give the API as many Postgres connections (``DB_POOL_MAX``).
    api_threads: Annotated[int, Field(ge=1)] = 8
    #: Seconds the API process may go without its event loop and a request thread both
    #: answering before it exits for the restart policy to replace it (0: no watchdog).
    api_watchdog_seconds: NonNegativeFloat = 60.0

    # Operator alerts (:attr:`alerts`); no channel = a logged warning.
    #: Webhook that receives each alert as JSON (http or https; its path may hold a token).
    alert_webhook_url: Text | None = None
    #: SMTP server of alert e-mail and of the notification tasks.
    smtp_host: Text | None = None
    smtp_port: Port = AlertConfig.smtp_port
    alert_email_from: Text = AlertConfig.sender
    #: Alert e-mail recipients (comma-separated); e-mail alerts need ``SMTP_HOST`` too.
    alert_email_to: CommaList = ()

    #: Hosts URL-taking tasks may call although they are internal (comma-separated
    #: ``host`` or ``host:port``): they skip the egress policy's checks of service names
    #: and resolved addresses (:mod:`celeryref.adapters.egress`). Empty: public hosts only.
    egress_allowed_hosts: CommaList = ()

    #: ``FAULT_INJECTION=1`` lets the fault drills (``devtools.tasks.default.drills``)
    #: run; only the fault suite's compose override sets it.
    fault_injection: bool = False

    #: Task packages imported and routed besides :data:`celeryref.queues.TASK_PACKAGE`
    #: (comma-separated), laid out the same way (``<package>.<queue>``). Empty in
    #: production; the benchmark and fault-suite overrides add ``bench.tasks`` /
    #: ``devtools.tasks``.
    extra_task_packages: CommaList = ()

    # -- refusals (each a SettingsError naming the variable) -----------------------

    @model_validator(mode="after")
    def _running_tasks_are_never_redelivered(self) -> Self:
        if not 0 < self.task_soft_time_limit < self.task_time_limit:
            raise SettingsError(
                "TASK_SOFT_TIME_LIMIT must be positive and below TASK_TIME_LIMIT "
                f"({self.task_soft_time_limit} >= {self.task_time_limit})"
            )
        if self.task_time_limit + VISIBILITY_MARGIN_SECONDS >= self.broker_visibility_timeout:
            raise SettingsError(
                f"TASK_TIME_LIMIT + {VISIBILITY_MARGIN_SECONDS}s must be below "
                "BROKER_VISIBILITY_TIMEOUT, or Redis redelivers a task that is still running "
                f"({self.task_time_limit} + {VISIBILITY_MARGIN_SECONDS} >= "
                f"{self.broker_visibility_timeout})"
            )
        return self

    @model_validator(mode="after")
    def _alerts_can_be_delivered(self) -> Self:
        url = self.alert_webhook_url
        if url and not url.lower().startswith(("http://", "https://")):
            # Not shown: its path may hold a token (Slack, Teams).
            raise SettingsError("ALERT_WEBHOOK_URL must start with http:// or https://")
        if self.alert_email_to and not self.smtp_host:
            raise SettingsError("ALERT_EMAIL_TO is set but SMTP_HOST is not: e-mail cannot be sent")
        return self

    @model_validator(mode="after")
    def _tls_files_are_never_ignored(self) -> Self:
        """A CA file where nothing would check a certificate against it: the operator
        expects TLS that is not happening, so refuse rather than talk in clear."""
        if self.redis_tls_ca_file and not self.redis_tls:
            raise SettingsError("REDIS_TLS_CA_FILE is set but REDIS_TLS is not: set REDIS_TLS=true")
        if self.postgres_sslrootcert and self.postgres_sslmode not in {"verify-ca", "verify-full"}:
            raise SettingsError(
                "POSTGRES_SSLROOTCERT is set but POSTGRES_SSLMODE is "
                f"{self.postgres_sslmode or 'unset'}: set POSTGRES_SSLMODE=verify-full"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _absent_secrets_are_empty_outside_development(cls, data: Any) -> Any:
        """Outside development a secret this process is not given is empty, not the
        development placeholder: an API without ``API_TOKEN`` accepts no token, Redis and
        Postgres refuse a client without its password. Each process gets only its own."""
        if isinstance(data, dict) and data.get("app_env", "development") not in DEVELOPMENT_ENVS:
            return {**dict.fromkeys((name.lower() for name in SECRET_VARIABLES), ""), **data}
        return data

    @model_validator(mode="after")
    def _secrets_are_real_outside_development(self) -> Self:
        if self.is_development:
            return self
        secrets = {
            "REDIS_PASSWORD": self.redis_password.get_secret_value(),
            "POSTGRES_PASSWORD": self.postgres_password.get_secret_value(),
            "API_TOKEN": self.api_token.get_secret_value(),
        }
        if flower := self.flower_basic_auth.get_secret_value():
            secrets["FLOWER_PASSWORD"] = flower.partition(":")[2]
        where = f"when APP_ENV={self.app_env!r}"
        for name, value in secrets.items():
            if name != "FLOWER_PASSWORD" and not value:
                continue  # not given to this process
            shortest = MIN_API_TOKEN_LENGTH if name == "API_TOKEN" else MIN_SECRET_LENGTH
            if any(word in value.lower() for word in PLACEHOLDER_SECRETS):
                raise SettingsError(f"{name} is a placeholder; set a real secret {where}")
            if len(value) < shortest:
                raise SettingsError(
                    f"{name} is too short ({len(value)} characters); at least {shortest} {where}"
                )
        return self

    # -- derived -----------------------------------------------------------------

    @property
    def task_packages(self) -> tuple[str, ...]:
        """Every package whose ``<package>.<queue>`` modules hold tasks, product first."""
        return (queues.TASK_PACKAGE, *self.extra_task_packages)

    @property
    def alerts(self) -> AlertConfig:
        """Where operator alerts go, from ``ALERT_WEBHOOK_URL``, ``SMTP_HOST``/``SMTP_PORT``,
        ``ALERT_EMAIL_FROM`` and ``ALERT_EMAIL_TO``."""
        return AlertConfig(
            webhook_url=self.alert_webhook_url,
            smtp_host=self.smtp_host,
            smtp_port=self.smtp_port,
            sender=self.alert_email_from,
            recipients=self.alert_email_to,
        )

    def _redis_url(self, db: int) -> str:
        scheme = "rediss" if self.redis_tls else "redis"
        user = quote(self.redis_username or "", safe="")
        password = quote(self.redis_password.get_secret_value(), safe="")
        return f"{scheme}://{user}:{password}@{self.redis_host}:{self.redis_port}/{db}"

    @property
    def redis_ssl_options(self) -> dict[str, Any]:
        """TLS keyword arguments of every Redis client (redis-py's names, which Celery's
        ``broker_use_ssl``/``redis_backend_use_ssl`` pass through); empty without TLS.
        Explicit because kombu accepts any certificate for a bare ``rediss://`` URL."""
        if not self.redis_tls:
            return {}
        ca = {"ssl_ca_certs": self.redis_tls_ca_file} if self.redis_tls_ca_file else {}
        return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True, **ca}

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
        password = quote(self.postgres_password.get_secret_value(), safe="")
        tls = {"sslmode": self.postgres_sslmode, "sslrootcert": self.postgres_sslrootcert}
        query = urlencode({key: value for key, value in tls.items() if value}, quote_via=quote)
        return (
            f"postgresql://{user}:{password}@{self.postgres_host}:"
            f"{self.postgres_port}/{self.postgres_db}"
        ) + (f"?{query}" if query else "")

    @property
    def is_development(self) -> bool:
        return self.app_env in DEVELOPMENT_ENVS


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading ``env`` instead of ``os.environ``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return _read_secret_files(
            {
                key if self.case_sensitive else key.lower(): value
                for key, value in self._env.items()
                if not (self.env_ignore_empty and value == "")
            }
        )


def _read_secret_files(env: dict[str, str | None]) -> dict[str, str | None]:
    """``<SECRET>_FILE=path`` becomes ``<SECRET>=`` the file's text (trailing newlines
    dropped, as the shell's ``$(cat path)`` does) for each of :data:`SECRET_VARIABLES`."""
    for name in SECRET_VARIABLES:
        path = env.pop(f"{name.lower()}_file", None)
        if not path:
            continue
        if env.get(name.lower()):
            raise SettingsError(f"{name} and {name}_FILE are both set; set one of them")
        try:
            env[name.lower()] = Path(path).read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise SettingsError(f"{name}_FILE: cannot read {path} ({exc.strerror})") from None
    return env


#: How a value pydantic could not parse is described: "<VARIABLE> must be ...".
_EXPECTED = {
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "bool_parsing": "a boolean (1/0, true/false)",
}


def _explain(error: ErrorDetails) -> str:
    """One line naming the variable; never the raw value of a string (it may be a secret)."""
    ctx = error.get("ctx", {})
    if isinstance(ctx.get("error"), SettingsError):
        return str(ctx["error"])
    variable = ".".join(str(part) for part in error["loc"]).upper()
    kind = error["type"]
    if kind in _EXPECTED:
        return f"{variable} must be {_EXPECTED[kind]}, got {error['input']!r}"
    if kind in {"greater_than", "greater_than_equal"}:
        bound = f"> {ctx['gt']}" if kind == "greater_than" else f">= {ctx['ge']}"
        return f"{variable} must be {bound}, got {error['input']!r}"
    if kind == "value_error":
        return f"{variable} {ctx['error']}"
    return f"{variable}: {error['msg']}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build validated :class:`Settings` from ``env`` (default: ``os.environ``).

    Raises :class:`SettingsError` naming each variable that is malformed, or the rule
    an otherwise well-formed environment breaks.
    """
    source = _EnvironmentSource(os.environ if env is None else env)
    try:
        # BaseSettings.__init__ takes _build_sources; mypy sees only the fields.
        return Settings(_build_sources=((source,), {}))  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError("; ".join(_explain(error) for error in exc.errors())) from None


#: The process-wide settings, read once at import.
settings = load_settings()
