"""The production profile (``compose.prod.yml``, issue 17) as ``docker inspect`` sees it,
least privilege in Redis and Postgres, and a task end to end through the API.

Its own compose project ``celeryref-prodtest`` (``make up-prod`` runs ``celeryref-prod``):
the API on 48000 and Flower on 45555 (port offset 40000; Redis and Postgres publish
nothing), fresh secrets made by ``scripts/prod-secrets.sh`` in a temporary directory.
Brought up from nothing once for the module and removed after, unless ``KEEP_STACK=1``.
Tests run in file order: the Redis restart is last.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.harness import ComposeError, ComposeProject
from tests.conftest import ROOT, docker_compose_available, missing, wait_for
from tests.stack.conftest import PYTHON_LONG_RUNNING

PROJECT = "celeryref-prodtest"
FILES = ("docker-compose.yml", "compose.prod.yml")
BASE = "http://127.0.0.1:48000"
PROD_ENV = {
    "APP_HOST_PORT": "48000",
    "FLOWER_HOST_PORT": "45555",
    "HEALTHCHECK_INTERVAL": "5s",
    # An image tag of its own: rebuilding `celeryref/app:latest` here gave the stack
    # tier's running project a new image, and its next `up --scale` recreated every
    # service mid-session (stale containers in its heartbeat rows).
    "APP_IMAGE": "celeryref/app:prodtest",
}
LONG_RUNNING = ["redis", "postgres", *PYTHON_LONG_RUNNING]
#: Variables that hold a secret in development; none may reach a production container.
SECRET_VARIABLES = ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN", "FLOWER_BASIC_AUTH")

#: Run in a container with its own settings: each Redis command's outcome, as JSON.
REDIS_PROBE = """
import json, sys, redis
from celeryref.settings import settings
client = redis.Redis.from_url(settings.broker_url, socket_timeout=5)
out = {}
for words in json.loads(sys.argv[1]):
    try:
        client.execute_command(*words)
        out[" ".join(words)] = "ok"
    except redis.exceptions.NoPermissionError:
        out[" ".join(words)] = "NOPERM"
try:
    redis.Redis(host=settings.redis_host, socket_timeout=5).ping()
    out["no user"] = "ok"
except redis.exceptions.AuthenticationError:
    out["no user"] = "NOAUTH"
print(json.dumps(out))
"""

#: Run in a container: each SQL statement's outcome (``ok`` or the SQLSTATE) and settings.
POSTGRES_PROBE = """
import json, sys, psycopg2
from celeryref.settings import settings
conn = psycopg2.connect(settings.database_dsn, connect_timeout=5)
conn.autocommit = True
out = {}
with conn.cursor() as cur:
    for sql in json.loads(sys.argv[1]):
        try:
            cur.execute(sql)
            out[sql] = cur.fetchone()[0] if cur.description else "ok"
        except psycopg2.Error as exc:
            out[sql] = exc.pgcode
print(json.dumps(out))
"""


@dataclass
class Prod(ComposeProject):
    """The production profile, with the directory of its secrets."""

    secrets: Path = Path()
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, **PROD_ENV})

    def secret(self, name: str) -> str:
        return (self.secrets / name).read_text()

    def inspect(self, service: str) -> dict[str, Any]:
        (container,) = self.container_ids(service)
        info: dict[str, Any] = json.loads(self.docker("inspect", container))[0]
        return info

    def probe(self, service: str, code: str, argument: Any) -> dict[str, Any]:
        """Run ``code`` with ``argument`` (JSON) in ``service``'s container; its JSON."""
        out = self.exec(service, "python", "-c", code, json.dumps(argument), timeout=60)
        result: dict[str, Any] = json.loads(out)
        return result

    def acl_log(self, reset: bool = False) -> str:
        """Redis's ``ACL LOG`` (every refused command) as the ``ops`` user."""
        command = "acl log reset" if reset else "acl log"
        return self.exec(
            "redis",
            "sh",
            "-c",
            'REDISCLI_AUTH="$(cat /run/secrets/redis_ops_password)" '
            f"redis-cli --no-auth-warning --user ops {command}",
        )

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret('api_token')}"}


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prod]:
    """The production profile, built and brought up healthy from nothing."""
    if not docker_compose_available():
        missing("no Docker engine with the compose plugin")
    secrets = tmp_path_factory.mktemp("secrets")
    subprocess.run(["bash", "scripts/prod-secrets.sh", str(secrets)], cwd=ROOT, check=True)
    p = Prod(PROJECT, FILES, secrets=secrets)
    p.env["SECRETS_DIR"] = str(secrets)
    p.down()
    p.compose("build")
    try:
        p.up()
    except ComposeError:
        print(p.compose("logs", "--no-color", "--tail", "60", check=False))  # noqa: T201
        raise
    yield p
    if not os.environ.get("KEEP_STACK"):
        p.down(check=False)


def test_the_profile_comes_up_healthy_without_the_mail_sink(prod: Prod) -> None:
    rows = {r["Service"]: r for r in prod.containers()}
    for service in LONG_RUNNING:
        assert (rows[service]["State"], rows[service]["Health"]) == ("running", "healthy")
    assert rows["migrate"]["State"] == "exited" and rows["migrate"]["ExitCode"] == 0
    assert "mailsink" not in rows


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_container_is_hardened(prod: Prod, service: str) -> None:
    """Read-only root, no capability, no privilege gain, limits, a non-root user, its
    secrets as files under /run/secrets and none in its environment."""
    info = prod.inspect(service)
    host, config = info["HostConfig"], info["Config"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["NanoCpus"] > 0 and host["PidsLimit"] > 0
    assert config["User"] not in ("", "root", "0", "0:0")
    secrets = [m for m in info["Mounts"] if m["Destination"].startswith("/run/secrets/")]
    assert secrets and all(not m["RW"] for m in secrets)
    env = dict(line.split("=", 1) for line in config["Env"])
    assert not set(SECRET_VARIABLES) & set(env) and "REDISCLI_AUTH" not in env
    values = {prod.secret(Path(m["Destination"]).name) for m in secrets}
    assert not values & {v for value in env.values() for v in (value, *value.split(":"))}


@pytest.mark.parametrize("service", ["redis", "postgres"])
def test_the_data_stores_publish_no_port(prod: Prod, service: str) -> None:
    info = prod.inspect(service)
    assert not info["HostConfig"]["PortBindings"]
    assert not any(info["NetworkSettings"]["Ports"].values())


def test_a_task_runs_end_to_end_and_no_role_was_refused(prod: Prod) -> None:
    """A task submitted to the API runs on a worker; meanwhile (start-up, healthchecks,
    beat, Flower's events) Redis refused no command of any role (ACL LOG is empty)."""
    body = {"task": "add", "args": {"x": 20, "y": 22}}
    response = requests.post(f"{BASE}/tasks", json=body, headers=prod.auth(), timeout=10)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]

    def finished() -> dict[str, Any] | None:
        reply = requests.get(f"{BASE}/tasks/{task_id}", headers=prod.auth(), timeout=10)
        status: dict[str, Any] = reply.json()
        return status if status["state"] in ("SUCCESS", "FAILURE") else None

    done = wait_for(finished, 60, "the task to finish")
    assert (done["state"], done["result"]) == ("SUCCESS", 42)
    workers = requests.get(f"{BASE}/workers", headers=prod.auth(), timeout=30)
    assert workers.status_code == 200
    assert prod.acl_log().strip() == ""


def test_redis_roles_cannot_do_what_they_must_not(prod: Prod) -> None:
    """The API's user cannot flush, reconfigure, enumerate keys or forge a result; the
    workers' cannot flush, reconfigure or widen their own rights; Flower's cannot send a
    task; beat's cannot touch a task's delivery count; nobody connects without a user
    (``default`` is off)."""
    admin = [["FLUSHALL"], ["FLUSHDB"], ["CONFIG", "GET", "*"], ["KEYS", "*"], ["SCAN", "0"]]
    api = prod.probe("app", REDIS_PROBE, [*admin, ["SET", "celery-task-meta-forged", "x"]])
    assert set(api.values()) == {"NOPERM", "NOAUTH"}, api
    escalate = [["FLUSHALL"], ["CONFIG", "SET", "maxmemory", "0"], ["ACL", "SETUSER", "x", "on"]]
    worker = prod.probe("worker", REDIS_PROBE, escalate)
    assert set(worker.values()) == {"NOPERM", "NOAUTH"}, worker
    flower = prod.probe("flower", REDIS_PROBE, [["LPUSH", "default", "{}"]])
    beat = prod.probe("beat", REDIS_PROBE, [["GET", "celeryref:deliveries:x:0"]])
    assert flower["LPUSH default {}"] == beat["GET celeryref:deliveries:x:0"] == "NOPERM"
    assert "flushall" in prod.acl_log()  # refusals are logged for operators
    prod.acl_log(reset=True)


def test_the_app_role_has_no_ddl_and_timeouts(prod: Prod) -> None:
    """Services use the app role: no DROP/CREATE/ALTER/TRUNCATE, the tables belong to the
    owner that ran the migrations, statement and idle-in-transaction timeouts are set."""
    statements = [
        "DROP TABLE dead_letters",
        "CREATE TABLE intruder (id int)",
        "ALTER TABLE dead_letters ADD COLUMN x int",
        "TRUNCATE dead_letters",
        "SHOW statement_timeout",
        "SHOW idle_in_transaction_session_timeout",
        "SELECT tableowner FROM pg_tables WHERE tablename = 'dead_letters'",
        "SELECT count(*) >= 0 FROM dead_letters",
    ]
    out = prod.probe("worker", POSTGRES_PROBE, statements)
    insufficient_privilege = "42501"
    assert {out[s] for s in statements[:4]} == {insufficient_privilege}, out
    assert out["SHOW statement_timeout"] == "30s"
    assert out["SHOW idle_in_transaction_session_timeout"] == "1min"
    assert out[statements[6]] == "celeryref_owner" and out[statements[7]] is True


def test_transactions_survive_a_redis_restart(prod: Prod) -> None:
    """Redis replays its AOF as the ``default`` user and re-checks each MULTI/EXEC (kombu's
    acks, results, scripts' effects) against its permissions: ``default`` is off but keeps
    them all, or every transaction is lost at restart (redis/redis#14541). Control: with
    ``user default off -@all`` in docker/prod/redis-users.acl this test fails."""
    keys = ["celeryref:probe:multi:1", "celeryref:probe:multi:2"]
    code = (
        "import json, sys\n"
        "from celeryref.adapters import redis_state\n"
        "keys = json.loads(sys.argv[1])\n"
        "if keys[0] == 'write':\n"
        "    redis_state.client().pipeline(transaction=True)"
        ".set(keys[1], 1).set(keys[2], 1).execute()\n"
        "print(json.dumps({k: redis_state.client().get(k) is not None for k in keys[1:]}))\n"
    )
    assert all(prod.probe("worker", code, ["write", *keys]).values())
    prod.compose("restart", "redis")
    wait_for(lambda: prod.containers("redis")[0]["Health"] == "healthy", 60, "redis healthy")
    assert prod.probe("worker", code, ["read", *keys]) == dict.fromkeys(keys, True)
    assert "multi" not in prod.acl_log()
