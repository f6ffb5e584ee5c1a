"""The circuit breaker's pure parts: its configuration and which errors count as failures."""

from __future__ import annotations

import pytest
import requests

from celeryref.errors import (
    BadRequestUpstream,
    CircuitOpen,
    DatabaseUnavailable,
    DuplicateInProgress,
    InvalidArguments,
    UpstreamUnavailable,
)
from celeryref.reliability.circuit_breaker import BreakerConfig, is_counted_failure


def test_defaults() -> None:
    """Five failures open the circuit for 30 s, then one probe at a time."""
    assert BreakerConfig() == BreakerConfig(
        failure_threshold=5, reset_timeout=30.0, half_open_max_calls=1
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"reset_timeout": 0.0},
        {"reset_timeout": -1.0},
        {"half_open_max_calls": 0},
    ],
)
def test_config_refuses_values_that_would_wedge_the_breaker(kwargs: dict[str, float]) -> None:
    """A zero threshold, zero/negative timeout or zero probe slots is a ValueError."""
    with pytest.raises(ValueError, match="invalid breaker config"):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(response=response)


@pytest.mark.parametrize(
    "exc",
    [
        UpstreamUnavailable("down"),
        DatabaseUnavailable("restarting"),
        requests.Timeout("slow"),
        requests.ConnectionError("refused"),
        _http_error(503),
        ConnectionResetError(),
    ],
    ids=repr,
)
def test_transient_errors_count_as_failures(exc: BaseException) -> None:
    """Errors that say the dependency is unhealthy, ours or the library's, are counted."""
    assert is_counted_failure(exc)


@pytest.mark.parametrize(
    "exc",
    [
        BadRequestUpstream("400"),
        _http_error(404),
        InvalidArguments("bad"),
        ValueError("a bug"),
        RuntimeError("unexpected"),
        CircuitOpen("inner", retry_after=5.0),
        DuplicateInProgress("key"),
        KeyboardInterrupt(),
    ],
    ids=repr,
)
def test_permanent_errors_and_our_own_refusals_do_not_count(exc: BaseException) -> None:
    """A 4xx, a bug, or a refusal by our own guards says nothing about the dependency."""
    assert not is_counted_failure(exc)
