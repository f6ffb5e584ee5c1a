"""SPEC F9: the circuit breaker and its fallback, against real Redis and across processes.

Time is a fake clock handed to the breaker; other processes get the same instant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import pytest
import requests

from celeryref.adapters import redis_state
from celeryref.errors import BadRequestUpstream, CircuitOpen, UpstreamUnavailable
from celeryref.reliability.circuit_breaker import (
    HALF_OPEN_RETRY_AFTER,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
)
from celeryref.reliability.fallback import FallbackCache, call_with_fallback
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("clean_state")

NAME = "upstream"
T0 = 1_700_000_000.0
#: Key the processes of a concurrency test wait on until all have started.
BARRIER = redis_state.key("test", "barrier")
CONFIG = BreakerConfig(failure_threshold=3, reset_timeout=30.0, half_open_max_calls=2)


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_breaker(clock: FakeClock, config: BreakerConfig = CONFIG) -> CircuitBreaker:
    return CircuitBreaker(NAME, redis_state.client(), config, clock)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.config.failure_threshold):
        breaker.record_failure()
    assert breaker.snapshot().state == "open"


def fail_upstream() -> NoReturn:
    raise UpstreamUnavailable("503 from upstream")


def fail_bad_request() -> NoReturn:
    raise BadRequestUpstream("400 from upstream")


def never_called() -> NoReturn:
    pytest.fail("an open circuit must not call through")


def retry_after(breaker: CircuitBreaker) -> float:
    with pytest.raises(CircuitOpen) as refused:
        breaker.before_call()
    assert refused.value.name == NAME
    return refused.value.retry_after


def other_process(body: str, now: float, config: BreakerConfig = CONFIG) -> subprocess.Popen[str]:
    """Start a fresh interpreter (same environment, so the same Redis) running ``body``
    with ``breaker`` bound to this test's breaker at clock ``now``."""
    code = textwrap.dedent(
        f"""
        import os
        from celeryref.reliability.circuit_breaker import BreakerConfig, CircuitBreaker
        breaker = CircuitBreaker({NAME!r}, config={config!r}, clock=lambda: {now!r})
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen[str], returncode: int = 0) -> None:
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == returncode, stderr


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    """Two failures leave it closed; the third (the threshold) opens it at that instant."""
    breaker = make_breaker(clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.snapshot() == BreakerState("closed", 2, None)
    breaker.before_call()

    breaker.record_failure()

    assert breaker.snapshot() == BreakerState("open", 3, T0)
    with pytest.raises(CircuitOpen):
        breaker.call(never_called)


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    """Failures only open the circuit when no success comes between them."""
    breaker = make_breaker(clock)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.snapshot() == BreakerState("closed", 0, None)


def test_open_refuses_with_retry_after_counting_down(clock: FakeClock) -> None:
    """While open, CircuitOpen.retry_after is the seconds left of reset_timeout."""
    breaker = make_breaker(clock)
    trip(breaker)
    assert retry_after(breaker) == pytest.approx(30.0)
    clock.now += 10
    assert retry_after(breaker) == pytest.approx(20.0)
    clock.now += 19.75
    assert retry_after(breaker) == pytest.approx(0.25)
    assert breaker.snapshot().state == "open"


def test_late_failures_do_not_extend_the_open_period(clock: FakeClock) -> None:
    """A failure recorded while already open (a slow caller) leaves opened_at alone."""
    breaker = make_breaker(clock)
    trip(breaker)
    clock.now += 20
    breaker.record_failure()
    assert breaker.snapshot().opened_at == T0
    assert retry_after(breaker) == pytest.approx(10.0)


def test_half_open_admits_exactly_max_calls_probes_concurrently(clock: FakeClock) -> None:
    """After reset_timeout, of 16 simultaneous callers exactly half_open_max_calls get in."""
    breaker = make_breaker(clock)
    trip(breaker)
    clock.now += CONFIG.reset_timeout
    start = threading.Barrier(16)

    def attempt() -> float | None:
        start.wait()
        try:
            breaker.before_call()
        except CircuitOpen as exc:
            return exc.retry_after
        return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(lambda _: attempt(), range(16)))

    assert outcomes.count(None) == CONFIG.half_open_max_calls
    assert all(r == HALF_OPEN_RETRY_AFTER for r in outcomes if r is not None)
    assert breaker.snapshot() == BreakerState("half_open", 3, T0, probes=2)


def test_probe_success_closes_the_circuit(clock: FakeClock) -> None:
    """A successful probe closes the circuit for everyone, failures back to zero."""
    breaker = make_breaker(clock)
    trip(breaker)
    clock.now += CONFIG.reset_timeout

    assert breaker.call(lambda: "fresh") == "fresh"

    assert breaker.snapshot() == BreakerState("closed", 0, None)
    breaker.before_call()


def test_probe_failure_reopens_for_a_full_timeout(clock: FakeClock) -> None:
    """A failed probe opens the circuit again, counting reset_timeout from now."""
    breaker = make_breaker(clock)
    trip(breaker)
    clock.now += CONFIG.reset_timeout + 5

    with pytest.raises(UpstreamUnavailable):
        breaker.call(fail_upstream)

    assert breaker.snapshot() == BreakerState("open", 4, clock.now)
    assert retry_after(breaker) == pytest.approx(CONFIG.reset_timeout)


def test_permanent_error_does_not_count(clock: FakeClock) -> None:
    """A 4xx is re-raised but neither counts nor breaks the run of counted failures."""
    breaker = make_breaker(clock)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            breaker.call(fail_upstream)
    for _ in range(10):
        with pytest.raises(BadRequestUpstream):
            breaker.call(fail_bad_request)
    assert breaker.snapshot() == BreakerState("closed", 2, None)

    with pytest.raises(UpstreamUnavailable):
        breaker.call(fail_upstream)
    assert breaker.snapshot().state == "open"


def test_library_timeouts_count_without_rewrapping(clock: FakeClock) -> None:
    """requests.Timeout is transient per errors.classify, so it trips the breaker as is."""
    breaker = make_breaker(clock)

    def slow() -> NoReturn:
        raise requests.Timeout("read timed out")

    for _ in range(CONFIG.failure_threshold):
        with pytest.raises(requests.Timeout):
            breaker.call(slow)
    assert breaker.snapshot().state == "open"


def test_permanent_error_frees_the_half_open_probe_slot(clock: FakeClock) -> None:
    """A probe ending in a 4xx decides nothing but lets the next caller probe at once."""
    breaker = make_breaker(clock, BreakerConfig(3, 30.0, half_open_max_calls=1))
    trip(breaker)
    clock.now += 30

    with pytest.raises(BadRequestUpstream):
        breaker.call(fail_bad_request)

    assert breaker.snapshot() == BreakerState("half_open", 3, T0, probes=0)
    breaker.before_call()
    assert breaker.snapshot().probes == 1


def test_probe_slot_of_a_dead_process_expires(clock: FakeClock) -> None:
    """A probe whose process dies unrecorded holds its slot for reset_timeout, no longer."""
    config = BreakerConfig(3, 30.0, half_open_max_calls=1)
    breaker = make_breaker(clock, config)
    trip(breaker)
    clock.now += 30
    finished(other_process("breaker.before_call()\nos._exit(9)\n", clock.now, config), 9)
    assert breaker.snapshot() == BreakerState("half_open", 3, T0, probes=1)

    clock.now += 29
    assert retry_after(breaker) == HALF_OPEN_RETRY_AFTER
    clock.now += 1
    breaker.before_call()
    assert breaker.snapshot() == BreakerState("half_open", 3, T0, probes=1)
    breaker.record_success()
    assert breaker.snapshot().state == "closed"


def test_breaker_opened_by_one_process_is_open_in_another(clock: FakeClock) -> None:
    """Failures recorded in another interpreter open the circuit this process sees."""
    finished(other_process("for _ in range(3):\n    breaker.record_failure()\n", T0))

    clock.now = T0 + 5
    breaker = make_breaker(clock)
    assert breaker.snapshot() == BreakerState("open", 3, T0)
    assert retry_after(breaker) == pytest.approx(25.0)


def test_failures_from_two_processes_count_toward_one_threshold(clock: FakeClock) -> None:
    """Two processes failing at the same moment lose no count: 2x500 failures of a 1001
    threshold leave it closed at 1000, and one more here opens it."""
    config = BreakerConfig(failure_threshold=1001, reset_timeout=30.0)
    body = f"""
        import time
        breaker.client.incr({BARRIER!r})
        deadline = time.monotonic() + 30
        while int(breaker.client.get({BARRIER!r})) < 2 and time.monotonic() < deadline:
            pass
        for _ in range(500):
            breaker.record_failure()
        """
    procs = [other_process(body, T0, config) for _ in range(2)]
    for proc in procs:
        finished(proc)

    breaker = make_breaker(clock, config)
    assert breaker.snapshot() == BreakerState("closed", 1000, None)
    breaker.record_failure()
    assert breaker.snapshot() == BreakerState("open", 1001, T0)


def test_reset_closes_the_circuit(clock: FakeClock) -> None:
    """reset() forgets the state: the next call goes through."""
    breaker = make_breaker(clock)
    trip(breaker)
    breaker.reset()
    assert breaker.snapshot() == BreakerState("closed", 0, None)
    assert breaker.call(lambda: 1) == 1


def test_fallback_serves_the_last_good_response_while_open(clock: FakeClock) -> None:
    """A fresh result is cached; once open, the cached one is served without calling."""
    breaker, cache = make_breaker(clock), FallbackCache(NAME)
    assert call_with_fallback(breaker, lambda: {"rate": 1.5}, cache) == ({"rate": 1.5}, False)
    assert call_with_fallback(breaker, lambda: {"rate": 1.7}, cache) == ({"rate": 1.7}, False)
    trip(breaker)

    assert call_with_fallback(breaker, never_called, cache) == ({"rate": 1.7}, True)


def test_fallback_serves_the_cache_when_the_call_fails(clock: FakeClock) -> None:
    """A counted failure is recorded and answered from the cache."""
    breaker, cache = make_breaker(clock), FallbackCache(NAME)
    call_with_fallback(breaker, lambda: [1, 2], cache)

    assert call_with_fallback(breaker, fail_upstream, cache) == ([1, 2], True)
    assert breaker.snapshot().failures == 1


def test_fallback_raises_when_nothing_is_cached(clock: FakeClock) -> None:
    """With an empty cache the original error comes out: the failure, then CircuitOpen."""
    breaker, cache = make_breaker(clock), FallbackCache(NAME)
    for _ in range(CONFIG.failure_threshold):
        with pytest.raises(UpstreamUnavailable):
            call_with_fallback(breaker, fail_upstream, cache)
    with pytest.raises(CircuitOpen):
        call_with_fallback(breaker, never_called, cache)


def test_fallback_does_not_hide_permanent_errors(clock: FakeClock) -> None:
    """A 4xx is the caller's problem: re-raised even when a cached value exists."""
    breaker, cache = make_breaker(clock), FallbackCache(NAME)
    call_with_fallback(breaker, lambda: "cached", cache)
    with pytest.raises(BadRequestUpstream):
        call_with_fallback(breaker, fail_bad_request, cache)


def test_fallback_cache_is_json_with_a_ttl() -> None:
    """Values are stored as JSON text (never pickle) with an expiry; non-JSON is refused."""
    cache = FallbackCache(NAME, ttl=60)
    cache.store({"a": [1, "b"]})
    raw = redis_state.client().get(redis_state.key("breaker", NAME, "last"))
    assert raw is not None and json.loads(raw) == {"a": [1, "b"]}
    assert 0 < redis_state.client().pttl(cache.key) <= 60_000
    with pytest.raises(TypeError):
        cache.store(object())
    assert cache.load() == {"a": [1, "b"]}
