"""The plain functions behind the tasks, without a broker."""

from __future__ import annotations

import math

import pytest

from celeryref.adapters.http import classify_response
from celeryref.errors import (
    BadRequestUpstream,
    InvalidArguments,
    PermanentError,
    TransientError,
    UpstreamUnavailable,
)
from celeryref.observability.health import node_name
from celeryref.observability.progress import progress_meta
from celeryref.tasks.cpu_intensive import burn
from celeryref.tasks.default import summarize_numbers
from celeryref.tasks.io_intensive import fetch


def test_summarize_numbers() -> None:
    assert summarize_numbers([1, 2, 3, 4]) == {
        "count": 4,
        "sum": 10.0,
        "mean": 2.5,
        "min": 1,
        "max": 4,
    }


@pytest.mark.parametrize("bad", [[], "123", [1, "2"], [True], [math.nan], None])
def test_summarize_rejects_bad_input_as_permanent(bad: object) -> None:
    with pytest.raises(InvalidArguments):
        summarize_numbers(bad)  # type: ignore[arg-type]


def test_progress_meta() -> None:
    assert progress_meta(3, 12) == {
        "current": 3,
        "total": 12,
        "percent": 25.0,
        "status": "step 3 of 12",
    }


def test_burn_is_deterministic_cpu_work() -> None:
    assert burn(3, b"x") == burn(3, b"x") != burn(4, b"x")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, UpstreamUnavailable),
        (503, UpstreamUnavailable),
        (404, BadRequestUpstream),
        (400, BadRequestUpstream),
    ],
)
def test_http_status_classification(status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        classify_response(status, "http://x")


def test_2xx_and_3xx_pass() -> None:
    classify_response(200, "http://x")
    classify_response(304, "http://x")


def test_error_hierarchy_separates_retry_from_dead_letter() -> None:
    assert issubclass(UpstreamUnavailable, TransientError)
    assert issubclass(BadRequestUpstream, PermanentError)
    assert not issubclass(InvalidArguments, TransientError)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x", 42])
def test_fetch_only_accepts_http_urls(url: object) -> None:
    with pytest.raises(InvalidArguments):
        fetch(url)  # type: ignore[arg-type]


def test_unreachable_host_is_transient() -> None:
    with pytest.raises(UpstreamUnavailable):
        fetch("http://127.0.0.1:9/")


def test_node_name_matches_the_compose_worker_names() -> None:
    assert node_name("cpu_intensive", "abc123") == "cpu_intensive@abc123"
