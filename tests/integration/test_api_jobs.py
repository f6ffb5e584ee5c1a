"""``/jobs`` of the HTTP API: a distributed map-reduce job over a real dataset."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from celeryref import queues
from celeryref.api.main import api
from celeryref.mapreduce import reference
from celeryref.mapreduce.generate import generate
from celeryref.settings import settings
from tests.conftest import wait_for

AUTH = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}


@pytest.fixture
def client(clean_state: None) -> Iterator[TestClient]:
    with TestClient(api) as c:
        yield c


def test_start_and_poll_a_job_to_its_exact_result(client: TestClient, worker: Any) -> None:
    """202 + job id; progress reaches 100%; the result equals the single-process reference."""
    name = f"api-{uuid.uuid4().hex[:8]}"
    generate(name, 500, seed=7, replace=True)
    options = {"group_by": "region", "value": "amount"}
    started = client.post(
        "/jobs",
        json={"dataset": name, "function": "aggregation", "options": options, "partitions": 4},
        headers=AUTH,
    )
    assert started.status_code == 202, started.text
    url = started.json()["status_url"]
    with worker(queues.CPU_INTENSIVE, queues.PRIORITY):
        done = wait_for(
            lambda: (
                (b := client.get(url, headers=AUTH).json())["status"] in ("succeeded", "failed")
                and b
            ),
            60,
            "the job",
        )
    assert done["status"] == "succeeded", done
    assert (done["partitions_done"], done["partitions_total"], done["percent"]) == (4, 4, 100.0)
    assert done["result"] == reference.run(name, "aggregation", options)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dataset": "missing", "function": "aggregation"}, "missing"),
        ({"dataset": "x", "function": "eval"}, "eval"),
        ({"dataset": "x", "function": "aggregation", "partitions": 0}, "greater than or equal"),
    ],
)
def test_bad_job_requests_are_422(client: TestClient, body: dict[str, Any], message: str) -> None:
    response = client.post("/jobs", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert message in response.text


def test_unknown_and_malformed_job_ids(client: TestClient) -> None:
    assert client.get(f"/jobs/{uuid.uuid4()}", headers=AUTH).status_code == 404
    assert client.get("/jobs/1; drop table", headers=AUTH).status_code == 422
    assert client.post("/jobs", json={"dataset": "x", "function": "aggregation"}).status_code == 401
