"""Settings parse the environment once, typed, and refuse unsafe combinations."""

from __future__ import annotations

import pytest

from celeryref.settings import SettingsError, load_settings

SECRETS = {"REDIS_PASSWORD": "r3al-redis", "POSTGRES_PASSWORD": "r3al-pg", "API_TOKEN": "t0ken"}


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
    s = load_settings({"APP_ENV": "production", **SECRETS, "FLOWER_BASIC_AUTH": "ops:s3cret"})
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
