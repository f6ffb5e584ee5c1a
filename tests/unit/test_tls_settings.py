"""TLS settings (issue 18) map onto every Redis client's options and the Postgres DSN."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection
from psycopg2.extensions import parse_dsn
from redbeat.schedulers import RedBeatConfig

from celeryref.adapters import redis_state
from celeryref.app.config import celery_config
from celeryref.celery_app import create_app
from celeryref.observability import queue_depth
from celeryref.settings import Settings, SettingsError, load_settings

CA = "/etc/celeryref/tls/ca.crt"
TLS = {
    "REDIS_TLS": "true",
    "REDIS_TLS_CA_FILE": CA,
    "POSTGRES_SSLMODE": "verify-full",
    "POSTGRES_SSLROOTCERT": CA,
}
VERIFIED = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True, "ssl_ca_certs": CA}


def test_without_tls_nothing_changes() -> None:
    s = load_settings({})
    assert s.broker_url.startswith("redis://") and s.redis_ssl_options == {}
    assert "?" not in s.database_dsn
    config = celery_config(s)
    assert not config["broker_use_ssl"] and not config["redis_backend_use_ssl"]


def test_redis_tls_makes_every_url_rediss_with_the_certificate_verified() -> None:
    s = load_settings(TLS)
    for url in (s.broker_url, s.result_backend_url, s.state_redis_url):
        assert url.startswith("rediss://:changeme@redis:6379/"), url
    assert s.redis_ssl_options == VERIFIED


def test_without_a_ca_file_the_system_cas_verify() -> None:
    """No ``ssl_ca_certs``: redis-py's default context, which loads the system's CAs."""
    options = load_settings({"REDIS_TLS": "1"}).redis_ssl_options
    assert options == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True}


def test_postgres_dsn_carries_sslmode_and_root_certificate() -> None:
    s = load_settings({**TLS, "POSTGRES_SSLROOTCERT": "/certs/my ca.pem"})
    assert parse_dsn(s.database_dsn) == {
        "user": "celeryref",
        "password": "changeme",
        "host": "postgres",
        "port": "5432",
        "dbname": "celeryref",
        "sslmode": "verify-full",
        "sslrootcert": "/certs/my ca.pem",
    }


def test_sslmode_alone_is_passed_on() -> None:
    """``require`` without a root certificate: encrypted, not verified (libpq's meaning)."""
    dsn = load_settings({"POSTGRES_SSLMODE": "require"}).database_dsn
    assert dsn.endswith("/celeryref?sslmode=require")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_TLS_CA_FILE": CA}, "REDIS_TLS_CA_FILE"),
        ({"POSTGRES_SSLROOTCERT": CA}, "POSTGRES_SSLROOTCERT"),
        ({"POSTGRES_SSLROOTCERT": CA, "POSTGRES_SSLMODE": "require"}, "POSTGRES_SSLROOTCERT"),
        ({"POSTGRES_SSLMODE": "verify_full"}, "POSTGRES_SSLMODE"),
    ],
)
def test_a_certificate_that_would_not_be_checked_is_refused(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(env)


def test_celery_gets_the_options_for_broker_results_and_beat() -> None:
    """The app built from TLS settings verifies on each of its Redis connections."""
    app = create_app(load_settings(TLS))
    assert app.connection_for_write().ssl == VERIFIED
    params = app.backend.connparams
    assert params["connection_class"] is redis.SSLConnection
    assert {key: params[key] for key in VERIFIED} == VERIFIED
    assert RedBeatConfig(app).redis_use_ssl == VERIFIED


def test_control_kombu_accepts_any_certificate_for_a_bare_rediss_url() -> None:
    """Why ``broker_use_ssl`` is set explicitly: kombu 5.7 turns a ``rediss://`` URL
    without SSL options into ``CERT_NONE``. Fails when kombu verifies by default."""
    assert Connection("rediss://:pw@redis:6379/0").ssl == {"ssl_cert_reqs": ssl.CERT_NONE}


@pytest.fixture
def tls_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The application's own Redis clients, rebuilt from TLS settings."""
    s = load_settings(TLS)
    monkeypatch.setattr(redis_state, "settings", s)
    monkeypatch.setattr(queue_depth, "settings", s)
    clients = (redis_state.client, redis_state.results_client, queue_depth.broker_client)
    for client in clients:
        client.cache_clear()
    yield s
    for client in clients:
        client.cache_clear()


@pytest.mark.usefixtures("tls_settings")
def test_the_apps_own_redis_clients_verify_too() -> None:
    clients = (redis_state.client(), redis_state.results_client(), queue_depth.broker_client())
    for client in clients:
        pool = client.connection_pool
        assert pool.connection_class is redis.SSLConnection
        kwargs = pool.connection_kwargs
        assert kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED and kwargs["ssl_ca_certs"] == CA
        assert kwargs["ssl_check_hostname"] is True
