"""Retry policies and error classification: pure functions, no broker."""

from __future__ import annotations

import random

import kombu.exceptions
import psycopg2
import pytest
import redis
import requests
from celery.exceptions import BackendStoreError, SoftTimeLimitExceeded, TimeLimitExceeded

from celeryref.errors import (
    BadRequestUpstream,
    CircuitOpen,
    DatabaseUnavailable,
    InvalidArguments,
    Severity,
    UpstreamUnavailable,
    classify,
)
from celeryref.reliability import retry
from celeryref.reliability.idempotency import derive_key, validate_key


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = retry.RetryPolicy(max_retries=10, base_delay=1.0, max_delay=20.0, jitter=False)
    assert [policy.backoff(n) for n in range(7)] == [1, 2, 4, 8, 16, 20, 20]


def test_jitter_stays_within_half_to_full_step() -> None:
    """Equal jitter: waits spread over [step/2, step], so retries do not synchronize."""
    policy = retry.RetryPolicy(base_delay=2.0, max_delay=100.0)
    rng = random.Random(7)
    for attempt in range(6):
        step = policy.step(attempt)
        waits = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(step / 2 <= w <= step for w in waits)
        assert max(waits) - min(waits) > step / 4  # really spread


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert retry.DEFAULT_POLICY.step(10_000) == retry.DEFAULT_MAX_DELAY


def test_policy_bounds_the_number_of_retries() -> None:
    policy = retry.RetryPolicy(max_retries=2)
    assert [policy.allows(n) for n in range(4)] == [True, True, False, False]


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        retry.RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        retry.RetryPolicy(base_delay=10, max_delay=1)


def test_registry_gives_per_task_policies() -> None:
    custom = retry.RetryPolicy(max_retries=1)
    retry.register("tests.unit.some_task", custom)
    assert retry.policy_for("tests.unit.some_task") is custom
    assert retry.policy_for("tests.unit.other") is retry.DEFAULT_POLICY


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(response=response)


@pytest.mark.parametrize(
    ("exc", "transient", "category"),
    [
        (UpstreamUnavailable("x"), True, "upstream_unavailable"),
        (DatabaseUnavailable("x"), True, "database_unavailable"),
        (CircuitOpen("api", 3.0), True, "circuit_open"),
        (requests.ConnectionError("x"), True, "upstream_unavailable"),
        (requests.Timeout("x"), True, "upstream_timeout"),
        (_http_error(503), True, "upstream_unavailable"),
        (_http_error(404), False, "upstream_http_error"),
        (psycopg2.OperationalError("x"), True, "database_unavailable"),
        (psycopg2.InterfaceError("x"), True, "database_unavailable"),
        (SoftTimeLimitExceeded(), True, "soft_time_limit"),
        (TimeLimitExceeded(5), False, "hard_time_limit"),
        (BadRequestUpstream("x"), False, "upstream_bad_request"),
        (InvalidArguments("x"), False, "invalid_arguments"),
        (TypeError("x"), False, "unexpected"),
        (_http_error(429), True, "upstream_unavailable"),
        (requests.exceptions.SSLError("bad cert"), False, "upstream_tls"),
        (requests.exceptions.ChunkedEncodingError("cut"), True, "upstream_unavailable"),
        (redis.ConnectionError("x"), True, "redis_unavailable"),
        (kombu.exceptions.OperationalError("x"), True, "broker_unavailable"),
        (BackendStoreError("x", state="SUCCESS", task_id="t"), True, "result_store_unavailable"),
        (psycopg2.IntegrityError("x"), False, "database_integrity"),
        (RuntimeError("a bug"), False, "unexpected"),
    ],
)
def test_classification(exc: BaseException, transient: bool, category: str) -> None:
    c = classify(exc)
    assert (c.transient, c.category) == (transient, category)


def test_sql_errors_in_our_own_statements_are_critical() -> None:
    assert classify(psycopg2.ProgrammingError("x")).severity is Severity.CRITICAL


def test_circuit_open_survives_the_json_result_backend_round_trip() -> None:
    """Celery rebuilds exceptions from their args; CircuitOpen keeps name and delay."""
    exc = CircuitOpen("payments", 12.5)
    rebuilt = CircuitOpen(*exc.args)
    assert (rebuilt.name, rebuilt.retry_after, str(rebuilt)) == ("payments", 12.5, str(exc))


def test_derived_idempotency_keys_ignore_kwarg_order_but_not_values() -> None:
    a = derive_key("t", [1], {"x": 1, "y": 2})
    assert a == derive_key("t", [1], {"y": 2, "x": 1})
    assert a != derive_key("t", [1], {"x": 1, "y": 3})
    assert a != derive_key("other", [1], {"x": 1, "y": 2})


@pytest.mark.parametrize("key", ["", "x" * 201, "tab\there", 42, None])
def test_bad_caller_keys_are_refused(key: object) -> None:
    with pytest.raises(InvalidArguments):
        validate_key(key)
