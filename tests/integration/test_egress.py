"""The egress policy on a real worker: an inward call_api is dead-lettered, not made.

The tier allowlists its fake upstream as 127.0.0.1 only (tests/conftest.py), so the
same server reached as "localhost" is an internal target, as is the dev mail sink.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from celeryref import queues
from celeryref.errors import EgressRefused
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.tasks import io_intensive
from tests.integration.conftest import RecordingHandler


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:{port}/messages", "resolves to .*loopback"),
        ("http://mailsink:8025/messages", "a service of this deployment"),
    ],
    ids=["loopback-name", "service-name"],
)
def test_call_api_on_an_internal_target_is_dead_lettered_with_the_egress_reason(
    worker: Any, http_server: str, url: str, reason: str
) -> None:
    """Given an internal URL, call_api fails at once (no retry, no request made) and
    its dead letter names the host and why."""
    target = url.format(port=urlsplit(http_server).port)
    result = io_intensive.call_api.delay("GET", target)
    with (
        worker(queues.IO_INTENSIVE, pool="threads", concurrency=4),
        pytest.raises(EgressRefused, match=reason),
    ):
        result.get(timeout=30)

    assert RecordingHandler.hits == {}
    (entry,) = dead_letters.list_entries()
    assert (entry.task_id, entry.category, entry.retries) == (result.id, "egress_refused", 0)
    assert entry.exception_type == "EgressRefused"
    assert "egress to" in entry.exception and urlsplit(target).hostname in entry.exception
