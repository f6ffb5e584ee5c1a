"""Not-found means one thing: the real stores raise :class:`~celeryref.errors.NotFound`;
every 404 of the HTTP API comes from one handler (``celeryref.api.main.not_found``) and
the CLIs print the same message and exit non-zero."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import Response

from celeryref.api.main import api
from celeryref.client.__main__ import main as client_cli
from celeryref.errors import NotFound
from celeryref.mapreduce.__main__ import main as mapreduce_cli
from celeryref.settings import settings
from celeryref.workflows.__main__ import main as workflows_cli

AUTH = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
TASK_ID = "never-submitted"
MISSING = str(uuid.uuid4())
ENTRY = 2**40

#: (method, path template, concrete path, message): every route that documents a 404.
NOT_FOUND_ROUTES = [
    ("GET", "/tasks/{task_id}", f"/tasks/{TASK_ID}", f"no task {TASK_ID!r} was submitted here"),
    ("DELETE", "/tasks/{task_id}", f"/tasks/{TASK_ID}", f"no task {TASK_ID!r} was submitted here"),
    (
        "GET",
        "/dead-letters/{entry_id}",
        f"/dead-letters/{ENTRY}",
        f"no dead letter with id {ENTRY}",
    ),
    (
        "POST",
        "/dead-letters/{entry_id}/replay",
        f"/dead-letters/{ENTRY}/replay",
        f"no dead letter with id {ENTRY}",
    ),
    (
        "DELETE",
        "/dead-letters/{entry_id}",
        f"/dead-letters/{ENTRY}",
        f"no dead letter with id {ENTRY}",
    ),
    ("GET", "/jobs/{job_id}", f"/jobs/{MISSING}", f"no map-reduce job {MISSING!r}"),
    (
        "GET",
        "/workflows/{execution_id}",
        f"/workflows/{MISSING}",
        f"no workflow execution {MISSING}",
    ),
    (
        "POST",
        "/workflows/{execution_id}/cancel",
        f"/workflows/{MISSING}/cancel",
        f"no workflow execution {MISSING}",
    ),
]


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> list[NotFound]:
    """The errors the NotFound handler answered (a spy around the registered one)."""
    seen: list[NotFound] = []
    registered: Any = api.exception_handlers[NotFound]

    async def spy(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotFound)
        seen.append(exc)
        response: Response = await registered(request, exc)
        return response

    monkeypatch.setitem(api.exception_handlers, NotFound, spy)
    monkeypatch.setattr(api, "middleware_stack", None)  # rebuilt with the spy, then restored
    return seen


@pytest.fixture
def client(clean_state: None) -> Iterator[TestClient]:
    with TestClient(api) as c:
        yield c


def test_the_list_covers_every_route_that_documents_a_404() -> None:
    documented = {
        (method.upper(), path)
        for path, operations in api.openapi()["paths"].items()
        for method, operation in operations.items()
        if "404" in operation.get("responses", {})
    }
    assert documented == {(method, template) for method, template, _, _ in NOT_FOUND_ROUTES}


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [(method, path, message) for method, _, path, message in NOT_FOUND_ROUTES],
)
def test_each_404_is_the_store_s_not_found_through_the_one_handler(
    client: TestClient, handled: list[NotFound], method: str, path: str, message: str
) -> None:
    """Given an id that names nothing, the store raises NotFound, the route lets it
    through, and the handler answers 404 ``{"detail": message}``."""
    response = client.request(method, path, headers=AUTH)
    assert (response.status_code, response.json()) == (404, {"detail": message})
    assert [str(exc) for exc in handled] == [message]


@pytest.mark.parametrize(
    ("cli", "argv", "code", "message"),
    [
        (client_cli, ["status", TASK_ID], 2, f"error: no task {TASK_ID!r} was submitted here"),
        (
            client_cli,
            ["deadletters", "show", str(ENTRY)],
            2,
            f"error: no dead letter with id {ENTRY}",
        ),
        (
            client_cli,
            ["deadletters", "replay", str(ENTRY)],
            2,
            f"error: no dead letter with id {ENTRY}",
        ),
        (mapreduce_cli, ["status", MISSING], 2, f"error: no map-reduce job {MISSING!r}"),
        (workflows_cli, ["status", MISSING], 1, f"no workflow execution {MISSING}"),
        (workflows_cli, ["cancel", MISSING], 1, f"no workflow execution {MISSING}"),
    ],
)
def test_the_clis_print_the_store_s_message_and_exit_non_zero(
    clean_state: None,
    capsys: pytest.CaptureFixture[str],
    cli: Callable[[list[str]], int],
    argv: list[str],
    code: int,
    message: str,
) -> None:
    """Given an id that names nothing, each CLI prints the same message as the API's
    ``detail`` (no traceback) and exits non-zero."""
    assert cli(argv) == code
    printed = capsys.readouterr()
    assert message in printed.out + printed.err
    assert "Traceback" not in printed.out + printed.err
