"""Production secrets (issue 17): read from ``*_FILE``, strong, and each process only its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from celeryref.settings import SettingsError, load_settings
from tests.conftest import ROOT

#: Strong enough for production (16+ characters, the API token 24+), no placeholder word.
STRONG = {
    "REDIS_PASSWORD": "Rk2vQ9xLw4TzNc7p",
    "POSTGRES_PASSWORD": "Pg8sMd3nVb6yHq1w",
    "API_TOKEN": "Tk5jWx2cLr9vBn4mQz7sYe3h",
}
PRODUCTION = {"APP_ENV": "production"}


def secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", ["REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN"])
def test_a_secret_is_read_from_the_file_its_file_variable_names(tmp_path: Path, name: str) -> None:
    """Given ``<NAME>_FILE`` (a Compose secret), the setting is the file's text without
    its trailing newline, as the shell's ``$(cat file)`` and the postgres image read it."""
    env = {**PRODUCTION, f"{name}_FILE": secret_file(tmp_path, name, STRONG[name] + "\n")}
    s = load_settings(env)
    assert getattr(s, name.lower()).get_secret_value() == STRONG[name]


def test_flower_credentials_are_read_from_a_file(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "flower", "ops:Fl8wQz3nVc6xLp1t\n")
    s = load_settings({**PRODUCTION, "FLOWER_BASIC_AUTH_FILE": path})
    assert s.flower_basic_auth.get_secret_value() == "ops:Fl8wQz3nVc6xLp1t"


def test_a_secret_given_twice_or_unreadable_is_refused(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "redis", STRONG["REDIS_PASSWORD"])
    with pytest.raises(SettingsError, match="REDIS_PASSWORD and REDIS_PASSWORD_FILE"):
        load_settings({"REDIS_PASSWORD": "x", "REDIS_PASSWORD_FILE": path})
    with pytest.raises(SettingsError, match="API_TOKEN_FILE: cannot read"):
        load_settings({"API_TOKEN_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REDIS_PASSWORD", "Short-but-real1", "REDIS_PASSWORD is too short"),
        ("POSTGRES_PASSWORD", "changeme", "POSTGRES_PASSWORD is a placeholder"),
        ("POSTGRES_PASSWORD", "changeme-changeme-2024", "POSTGRES_PASSWORD is a placeholder"),
        ("REDIS_PASSWORD", "my-Secret-is-very-long", "REDIS_PASSWORD is a placeholder"),
        ("API_TOKEN", "Tk5jWx2cLr9vBn4mQz7", "API_TOKEN is too short"),
        ("FLOWER_BASIC_AUTH", "admin:change-me-please-now", "FLOWER_PASSWORD is a placeholder"),
        ("FLOWER_BASIC_AUTH", "admin", "FLOWER_PASSWORD is too short"),
    ],
)
def test_weak_secrets_are_refused_in_production(name: str, value: str, message: str) -> None:
    """Production refuses a short secret or one holding a placeholder word, naming it."""
    with pytest.raises(SettingsError, match=message):
        load_settings({**PRODUCTION, **STRONG, name: value})
    load_settings({**STRONG, name: value})  # development tolerates it


def test_a_secret_a_process_is_not_given_is_empty_in_production() -> None:
    """Production never falls back to the development placeholder: a worker given no
    API_TOKEN has an empty one (an API without its token accepts none)."""
    s = load_settings({**PRODUCTION, "REDIS_PASSWORD": STRONG["REDIS_PASSWORD"]})
    assert s.api_token.get_secret_value() == ""
    assert s.postgres_password.get_secret_value() == ""
    assert load_settings({}).api_token.get_secret_value() == "changeme"


def test_a_redis_acl_user_goes_into_every_redis_url() -> None:
    """REDIS_USERNAME (the role's ACL user) is in the broker, result and state URLs."""
    s = load_settings({"REDIS_USERNAME": "worker", "REDIS_PASSWORD": "p@ss"})
    for url in (s.broker_url, s.result_backend_url, s.state_redis_url):
        assert url.startswith("redis://worker:p%40ss@redis:6379/")


FLOWER_OPTIONS = """
import flower.options
from tornado.options import options
options.parse_config_file("celeryref/observability/flower_config.py", final=False)
print(options.basic_auth)
"""


def test_flowers_login_comes_from_the_secret_file_and_is_required(tmp_path: Path) -> None:
    """``--conf=celeryref/observability/flower_config.py`` gives Flower the login of
    FLOWER_BASIC_AUTH_FILE; without one Flower refuses to start instead of running open."""
    path = secret_file(tmp_path, "flower", "ops:Fl8wQz3nVc6xLp1t\n")
    env = {"PATH": os.environ["PATH"], **PRODUCTION}
    argv = [sys.executable, "-c", FLOWER_OPTIONS]
    run = subprocess.run(
        argv, cwd=ROOT, env={**env, "FLOWER_BASIC_AUTH_FILE": path}, capture_output=True, text=True
    )
    assert run.stdout.strip() == "['ops:Fl8wQz3nVc6xLp1t']", run.stderr
    refused = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "Flower is open" in refused.stderr
