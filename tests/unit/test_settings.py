"""Settings parse the environment once, typed, and refuse unsafe combinations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from celeryref.settings import SettingsError, load_settings

SECRETS = {
    "REDIS_PASSWORD": "r3al-redis-Qx7vKp2m",
    "POSTGRES_PASSWORD": "r3al-pg-Wn4sLd8fzT",
    "API_TOKEN": "t0ken-Hc9rMb3xVq6tJw2nYe5k",
}


def test_defaults_suit_compose_in_development() -> None:
    """With an empty environment the settings describe the compose services."""
    s = load_settings({})
    assert s.broker_url == "redis://:changeme@redis:6379/0"
    assert s.result_backend_url.endswith("/1") and s.state_redis_url.endswith("/2")
    assert s.database_dsn == "postgresql://celeryref:changeme@postgres:5432/celeryref"


def test_secrets_are_url_quoted() -> None:
    """A password with URL metacharacters cannot change the host part of the URL."""
    s = load_settings({"REDIS_PASSWORD": "p@ss/w:rd#1", "POSTGRES_PASSWORD": "a@b"})
    assert s.broker_url == "redis://:p%40ss%2Fw%3Ard%231@redis:6379/0"
    assert "a%40b@postgres" in s.database_dsn


@pytest.mark.parametrize("name", ["REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN"])
def test_placeholder_secrets_are_refused_in_production(name: str) -> None:
    env = {"APP_ENV": "production", **SECRETS, name: "changeme"}
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


def test_placeholder_flower_password_is_refused_in_production() -> None:
    env = {"APP_ENV": "production", **SECRETS, "FLOWER_BASIC_AUTH": "admin:changeme"}
    with pytest.raises(SettingsError, match="FLOWER_PASSWORD"):
        load_settings(env)


def test_real_secrets_are_accepted_in_production() -> None:
    flower = "ops:fl0wer-Zt6uPq1sWa"
    s = load_settings({"APP_ENV": "production", **SECRETS, "FLOWER_BASIC_AUTH": flower})
    assert not s.is_development


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TASK_SOFT_TIME_LIMIT": "300", "TASK_TIME_LIMIT": "300"}, "SOFT_TIME_LIMIT"),
        ({"TASK_TIME_LIMIT": "4000"}, "VISIBILITY_TIMEOUT"),
        ({"MAX_DELIVERIES": "0"}, "MAX_DELIVERIES"),
        ({"RESULT_STORE_RETRIES": "-1"}, "RESULT_STORE_RETRIES"),
        ({"REDIS_PORT": "six"}, "REDIS_PORT must be an integer"),
    ],
)
def test_unsafe_or_malformed_values_are_refused(env: dict[str, str], message: str) -> None:
    """soft < hard < visibility timeout, or a running task would be redelivered."""
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SOCKET_TIMEOUT": "soon"}, "REDIS_SOCKET_TIMEOUT must be a number, got 'soon'"),
        ({"REDIS_SOCKET_TIMEOUT": "0"}, "REDIS_SOCKET_TIMEOUT must be > 0"),
        ({"POSTGRES_PORT": "70000"}, "POSTGRES_PORT must be a TCP port"),
        ({"FAULT_INJECTION": "maybe"}, "FAULT_INJECTION must be a boolean"),
    ],
)
def test_malformed_values_name_their_variable(env: dict[str, str], message: str) -> None:
    """A value pydantic cannot parse or that is out of range is refused by its variable name."""
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_variables_named_otherwise_than_their_field_still_work() -> None:
    """CELERY_TIMEZONE feeds ``timezone``; comma lists are split and trimmed, not JSON."""
    s = load_settings(
        {
            "CELERY_TIMEZONE": "Europe/Paris",
            "EXTRA_TASK_PACKAGES": " bench.tasks, ,devtools.tasks",
            "FAULT_INJECTION": "1",
            "WORKER_MAX_MEMORY_PER_CHILD_KIB": "1024",
        }
    )
    assert s.timezone == "Europe/Paris"
    assert s.extra_task_packages == ("bench.tasks", "devtools.tasks")
    assert s.task_packages[1:] == ("bench.tasks", "devtools.tasks")
    assert s.fault_injection and s.worker_max_memory_per_child_kib == 1024
    assert not load_settings({"FAULT_INJECTION": "0"}).fault_injection


def test_empty_variables_count_as_unset() -> None:
    """Compose's ``${X:-}`` passes "": the default applies, no parse error."""
    s = load_settings({"REDIS_PORT": "", "MAX_DELIVERIES": "", "EXTRA_TASK_PACKAGES": ""})
    assert (s.redis_port, s.max_deliveries, s.extra_task_packages) == (6379, 3, ())


def test_an_explicit_mapping_never_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings(env) reads only ``env``; load_settings() reads os.environ."""
    monkeypatch.setenv("REDIS_HOST", "from-os-environ")
    assert load_settings({}).redis_host == "redis"
    assert load_settings().redis_host == "from-os-environ"


def test_secrets_never_appear_in_repr_or_errors() -> None:
    """repr/str of the settings (what a log line shows) masks every secret."""
    secrets = {**SECRETS, "FLOWER_BASIC_AUTH": "ops:fl0wer-s3cret"}
    s = load_settings(secrets)
    for value in (*secrets.values(), "fl0wer-s3cret"):
        assert value not in repr(s) and value not in str(s)
    assert s.redis_password.get_secret_value() == SECRETS["REDIS_PASSWORD"]
    with pytest.raises(SettingsError) as refused:
        load_settings({**secrets, "APP_ENV": "production", "API_TOKEN": "changeme"})
    assert not any(value in str(refused.value) for value in secrets.values())


def test_settings_are_immutable() -> None:
    """The process-wide settings cannot be changed after start-up."""
    s = load_settings({})
    with pytest.raises(ValidationError):
        s.redis_host = "elsewhere"
