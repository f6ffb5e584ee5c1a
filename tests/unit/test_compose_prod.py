"""The production profile as Compose resolves it (``docker compose config``; no engine),
and the Redis ACL file against the keys the code uses (issue 17)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from celeryref import queues
from celeryref.adapters import redis_state
from celeryref.app import single_beat
from tests.conftest import ROOT
from tests.support.compose import compose_config

ACL = ROOT / "docker" / "prod" / "redis-users.acl"
#: Variables that hold a secret in development; none may reach a production container.
SECRET_VARIABLES = {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN", "FLOWER_BASIC_AUTH"}


def resolve(*files: str, secrets: Path) -> dict[str, Any]:
    model = compose_config(*files, env={**os.environ, "SECRETS_DIR": str(secrets)})
    services: dict[str, Any] = model["services"]
    return services


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return resolve("docker-compose.yml", "compose.prod.yml", secrets=tmp_path_factory.mktemp("s"))


def acl_users() -> dict[str, list[str]]:
    """``user NAME rules...`` lines of the ACL file, by user."""
    lines = [line.split() for line in ACL.read_text().splitlines() if line.startswith("user ")]
    return {words[1]: words[2:] for words in lines}


def test_every_service_is_hardened_and_limited(prod: dict[str, Any]) -> None:
    """Read-only root, no capability, no privilege gain, CPU/memory/pids limits."""
    for name, svc in prod.items():
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"] and not svc.get("cap_add"), name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc["cpus"] > 0 and int(svc["mem_limit"]) > 0 and svc["pids_limit"] > 0, name


def test_no_secret_in_any_environment(prod: dict[str, Any]) -> None:
    """Secrets arrive as files (``*_FILE``) and the services run with APP_ENV=production."""
    for name, svc in prod.items():
        env = svc.get("environment", {})
        assert not SECRET_VARIABLES & set(env) and "REDISCLI_AUTH" not in env, name
        for variable, path in env.items():
            if variable.endswith("_FILE"):
                assert path.startswith("/run/secrets/"), (name, variable)
                assert Path(path).name in {s["source"] for s in svc["secrets"]}, (name, variable)
        if name not in ("redis", "postgres"):
            assert env["APP_ENV"] == "production", name


def test_data_stores_have_no_host_port_and_the_mail_sink_is_dev_only(
    prod: dict[str, Any],
) -> None:
    assert not prod["redis"].get("ports") and not prod["postgres"].get("ports")
    assert "mailsink" not in prod


def test_each_python_service_uses_its_own_role(prod: dict[str, Any]) -> None:
    """Redis ACL user per role; Postgres: the owner migrates, the app role serves."""
    users = {name: svc.get("environment", {}).get("REDIS_USERNAME") for name, svc in prod.items()}
    assert users["app"] == "api" and users["beat"] == "beat" and users["flower"] == "flower"
    assert {users[w] for w in prod if w.startswith("worker")} == {"worker"}
    assert prod["migrate"]["environment"]["POSTGRES_USER"] == "celeryref_owner"
    for name in ("app", "worker", "worker-io"):
        assert prod[name]["environment"]["POSTGRES_USER"] == "celeryref_app", name
    assert set(acl_users()) >= {"worker", "api", "beat", "flower"}


def test_redis_keeps_its_development_options(prod: dict[str, Any], tmp_path: Path) -> None:
    """Persistence and the memory limit (F19) are the same as in development."""
    dev = resolve("docker-compose.yml", secrets=tmp_path)
    options = re.findall(r"--[a-z-]+ \S+", " ".join(dev["redis"]["command"]).replace('"', ""))
    wanted = [o for o in options if not o.startswith("--requirepass")]
    assert wanted and " ".join(wanted) in " ".join(prod["redis"]["command"])


def test_the_default_redis_user_is_off() -> None:
    assert acl_users()["default"][0] == "off"


def test_every_role_reaches_the_queues_and_no_role_everything() -> None:
    """Each queue, its priority lists and its bell are in every sending role's patterns
    (a new queue needs its line here); no role has ``~*``, ``&*`` or ``+@all``."""
    users = acl_users()
    for name in ("worker", "api", "beat", "flower"):
        rules = users[name]
        assert not {"~*", "&*", "+@all", "allkeys", "allchannels"} & set(rules), name
        assert "-@dangerous" in rules, name
        for queue in queues.ALL_QUEUES:
            keys = {f"~{queue}", f"~{queue}{queues.PRIORITY_SEP}*"}
            assert keys <= {r.removeprefix("%R") for r in rules}, (name, queue)
    assert f"~{redis_state.KEY_PREFIX}*" in users["worker"]
    assert f"~{single_beat.KEY_PREFIX}*" in users["beat"]
