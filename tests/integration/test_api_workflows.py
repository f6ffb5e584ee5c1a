"""``/workflows`` of the HTTP API against real Redis, Postgres and workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from celeryref.api.main import api
from celeryref.settings import settings
from tests.conftest import wait_for
from tests.integration import wf_support
from tests.integration.wf_support import WORK_QUEUES, Sink

domain_tables = wf_support.domain_tables
smtp_sink = wf_support.smtp_sink
start_sink = wf_support.start_sink

AUTH = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
RECORDS = [{"id": 1, "name": "a", "value": 3}, {"id": 2, "name": "b", "value": 5}]


@pytest.fixture
def client(domain_tables: None) -> Iterator[TestClient]:
    with TestClient(api) as c:
        yield c


def test_start_poll_tree_and_cancel_after_finish(
    client: TestClient, worker: Any, smtp_sink: Sink
) -> None:
    """202 + execution id; the status tree shows every step succeeded; cancelling a
    finished execution changes nothing."""
    assert "data_processing" in client.get("/workflows").json()
    started = client.post(
        "/workflows",
        json={"workflow": "data_processing", "input": {"records": RECORDS, "notify": ["x@y.z"]}},
        headers=AUTH,
    )
    assert started.status_code == 202, started.text
    url = started.json()["status_url"]
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        done = wait_for(
            lambda: (b := client.get(url, headers=AUTH).json())["status"] != "running" and b,
            60,
            "the workflow",
        )
    assert done["status"] == "succeeded", done["tree"]
    assert [s["name"] for s in done["steps"]] == [
        "validate",
        "clean",
        "transform",
        "analyze",
        "report",
        "notify",
    ]
    assert all(s["status"] == "succeeded" for s in done["steps"])
    assert "notify" in done["tree"]
    eid = started.json()["execution_id"]
    cancel = client.post(f"/workflows/{eid}/cancel", headers=AUTH)
    assert cancel.json() == {"id": eid, "cancelled": False}


def test_cancel_a_running_workflow(client: TestClient) -> None:
    """Without workers the first step stays queued; cancel marks everything cancelled."""
    eid = client.post(
        "/workflows",
        json={"workflow": "data_processing", "input": {"records": RECORDS}},
        headers=AUTH,
    ).json()["execution_id"]
    assert client.post(f"/workflows/{eid}/cancel", headers=AUTH).json()["cancelled"] is True
    body = client.get(f"/workflows/{eid}", headers=AUTH).json()
    assert body["status"] == "cancelled"
    assert {s["status"] for s in body["steps"]} == {"cancelled"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"workflow": "nope"}, "unknown workflow 'nope'"),
        ({}, "exactly one of"),
        (
            {
                "definition": {
                    "name": "loop",
                    "steps": [
                        {"name": "a", "task": "records.validate", "depends_on": ["b"]},
                        {"name": "b", "task": "records.clean", "depends_on": ["a"]},
                    ],
                }
            },
            "cycle",
        ),
        (
            {"definition": {"name": "x", "steps": [{"name": "a", "task": "os.system"}]}},
            "os.system",
        ),
        (
            {
                "definition": {
                    "name": "x",
                    "steps": [
                        {"name": "a", "task": "records.validate", "retries": "three"},
                    ],
                }
            },
            "retries",
        ),
        ({"workflow": "data_processing", "input": {"s": "nul\u0000byte"}}, "NUL"),
    ],
)
def test_bad_workflow_requests_are_422(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    response = client.post("/workflows", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert message in response.text


def test_nan_in_input_is_a_422_not_a_database_error(client: TestClient) -> None:
    response = client.post(
        "/workflows",
        content=b'{"workflow": "data_processing", "input": {"x": NaN}}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422 and "NaN" in response.text


def test_unknown_and_malformed_execution_ids(client: TestClient) -> None:
    assert client.get(f"/workflows/{uuid.uuid4()}", headers=AUTH).status_code == 404
    assert client.get("/workflows/not-a-uuid", headers=AUTH).status_code == 422
    assert client.post(f"/workflows/{uuid.uuid4()}/cancel", headers=AUTH).status_code == 404
    assert client.post(f"/workflows/{uuid.uuid4()}/cancel").status_code == 401
