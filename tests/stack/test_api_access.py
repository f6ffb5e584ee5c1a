"""Who may read what on the running stack (issue 17 item 5): the API's reads need the
token, health says only whether, Flower's login can watch but not run tasks."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conftest import DOTENV
from tests.stack.conftest import STACK_ENV, Stack
from tests.support.api import PROTECTED_READS

BASE = f"http://127.0.0.1:{STACK_ENV['APP_HOST_PORT']}"
AUTH = {"Authorization": f"Bearer {DOTENV['API_TOKEN']}"}


@pytest.mark.parametrize(
    "path",
    PROTECTED_READS,
)
def test_reads_need_the_token(stack: Stack, path: str) -> None:
    assert requests.get(f"{BASE}{path}", timeout=10).status_code == 401
    assert requests.get(f"{BASE}{path}", headers=AUTH, timeout=30).status_code in (200, 404)


def test_health_and_readiness_are_open_and_say_only_whether(stack: Stack) -> None:
    assert requests.get(f"{BASE}/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{BASE}/readyz", timeout=10).json() == {
        "ready": True,
        "checks": {"redis": "ok", "postgres": "ok"},
    }


def test_a_flower_login_can_watch_but_not_run_tasks(stack: Stack) -> None:
    """``FLOWER_READ_ONLY``: running a task by name (async-apply, send-task) and
    revoking are 403 even with Flower's password; listing workers still works."""
    url, auth = stack.flower_url, stack.flower_auth
    task = "celeryref.tasks.default.add"
    for path in (f"/api/task/async-apply/{task}", f"/api/task/send-task/{task}"):
        run = requests.post(f"{url}{path}", json={"args": [1, 2]}, auth=auth, timeout=30)
        assert run.status_code == 403 and "Read only" in run.text, (path, run.text)
    revoke = requests.post(f"{url}/api/task/revoke/{uuid.uuid4()}", auth=auth, timeout=30)
    assert revoke.status_code == 403
    assert requests.get(f"{url}/api/workers", auth=auth, timeout=30).status_code == 200


def test_the_api_runs_its_watchdog(stack: Stack) -> None:
    """The ``app`` service's process exits when it stops serving (the unit tier proves
    the exit); here: the deployment turns it on."""
    (container,) = stack.container_ids("app")
    env = stack.docker("inspect", "--format", "{{json .Config.Env}}", container)
    assert '"API_WATCHDOG_SECONDS=60"' in env
