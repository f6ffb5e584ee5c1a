"""A circuit breaker shared by every worker process (fallback: :mod:`.fallback`).

::

    closed --failure_threshold consecutive counted failures--> open
    open --reset_timeout s later, the next caller is admitted as a probe--> half_open
    half_open --probe succeeds--> closed        half_open --probe fails--> open

State lives only in the Redis hash ``celeryref:breaker:<name>`` (``state``, ``failures``,
``opened_at``, ``probes`` in flight, ``probe_at`` of the latest probe; epoch seconds of the
callers' clock) and each transition is one Lua script: every process sees one breaker.
A probe that dies without reporting frees its half-open slot ``reset_timeout`` s after the
latest probe was admitted, so a lost probe cannot keep the breaker half-open for ever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from celeryref.adapters import redis_state
from celeryref.errors import CircuitOpen, DuplicateInProgress, classify

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds to wait when every half-open probe slot is taken: a probe settles quickly.
HALF_OPEN_RETRY_AFTER = 1.0

# KEYS[1] is the hash; scripts return the new state on a transition. ARGV: now, reset_timeout,
# half_open_max_calls, HALF_OPEN_RETRY_AFTER. Returns {admitted, retry_after, new state}.
_BEFORE_CALL = """
local now, timeout = tonumber(ARGV[1]), tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probes', 'probe_at')
if not h[1] or h[1] == 'closed' then return {1, '0', ''} end
if h[1] == 'open' then
  local remaining = tonumber(h[2]) + timeout - now
  if remaining > 0 then return {0, tostring(remaining), ''} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probes', 1, 'probe_at', ARGV[1])
  return {1, '0', 'half_open'}
end
local probes, probe_at = tonumber(h[3]), tonumber(h[4])
if now - probe_at >= timeout then probes = 0 end  -- the probes in flight were lost
if probes < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'probes', probes + 1, 'probe_at', ARGV[1])
  return {1, '0', ''}
end
return {0, tostring(math.min(tonumber(ARGV[4]), probe_at + timeout - now)), ''}
"""
_SUCCESS = """
local h = redis.call('HMGET', KEYS[1], 'state', 'failures')
if h[1] == 'closed' and h[2] ~= '0' then redis.call('HSET', KEYS[1], 'failures', 0) end
if h[1] ~= 'half_open' then return false end
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'probes', 0)
redis.call('HDEL', KEYS[1], 'opened_at', 'probe_at')
return 'closed'
"""
# ARGV: now, failure_threshold.
_FAILURE = """
local h = redis.call('HMGET', KEYS[1], 'state', 'failures')
if h[1] == 'open' then return false end
local failures = (tonumber(h[2]) or 0) + 1
if h[1] == 'half_open' or failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'failures', failures, 'opened_at', ARGV[1])
  return 'open'
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', failures)
return false
"""
_RELEASE = """
local h = redis.call('HMGET', KEYS[1], 'state', 'probes')
if h[1] == 'half_open' and tonumber(h[2]) > 0 then redis.call('HINCRBY', KEYS[1], 'probes', -1) end
return false
"""


def is_counted_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the dependency is unhealthy: transient per :func:`classify`
    (``requests.Timeout`` as well as ``UpstreamUnavailable``), except refusals by our own
    guards (``CircuitOpen``, ``DuplicateInProgress``), where no call was made."""
    if isinstance(exc, CircuitOpen | DuplicateInProgress):
        return False
    return classify(exc).transient


@dataclass(frozen=True)
class BreakerConfig:
    """How eagerly a breaker opens and how it recovers."""

    #: Consecutive counted failures, summed over all processes, that open the circuit.
    failure_threshold: int = 5
    #: Seconds open before a probe is let through; also the longest a probe that never
    #: reports back holds its half-open slot.
    reset_timeout: float = 30.0
    #: Probe calls allowed in flight at once while half-open.
    half_open_max_calls: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_max_calls < 1 or self.reset_timeout <= 0:
            raise ValueError(f"invalid breaker config: {self}")


@dataclass(frozen=True)
class BreakerState:
    """The stored state, as is: ``open`` past its timeout until the next caller probes."""

    state: str
    failures: int
    #: When the circuit last opened (epoch seconds, the breaker's clock); ``None`` if closed.
    opened_at: float | None
    #: Probe calls admitted and not settled (expired ones included) while half-open.
    probes: int = 0


class CircuitBreaker:
    """The breaker ``name``: every instance of that name, in any process, is the same one.
    ``clock`` gives epoch seconds; sharing processes must agree on it to well within
    ``reset_timeout``. Redis errors propagate, except as noted in :meth:`call`."""

    def __init__(
        self,
        name: str,
        client: redis.Redis | None = None,
        config: BreakerConfig = BreakerConfig(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name, self.config, self.clock = name, config, clock
        self.client = client if client is not None else redis_state.client()
        self.key = redis_state.key("breaker", name)
        self._before = self.client.register_script(_BEFORE_CALL)
        self._success = self.client.register_script(_SUCCESS)
        self._failure = self.client.register_script(_FAILURE)
        self._release = self.client.register_script(_RELEASE)

    def before_call(self) -> None:
        """Admit a call, or raise :class:`CircuitOpen` with the seconds to wait. Closed:
        admitted. Open: refused until ``reset_timeout`` s after opening, then admitted as a
        probe (half-open). Half-open: admitted while fewer than ``half_open_max_calls``
        probes are in flight, else refused for at most :data:`HALF_OPEN_RETRY_AFTER` s."""
        cfg = self.config
        args = [self.clock(), cfg.reset_timeout, cfg.half_open_max_calls, HALF_OPEN_RETRY_AFTER]
        admitted, retry_after, new_state = self._before(keys=[self.key], args=args)
        self._log(new_state)
        if not admitted:
            raise CircuitOpen(self.name, retry_after=float(retry_after))

    def record_success(self) -> None:
        """Half-open: close (failures and probes 0). Closed: failures back to 0."""
        self._log(self._success(keys=[self.key]))

    def record_failure(self) -> None:
        """Closed: count it, and open at ``failure_threshold``. Half-open: open again now.
        Open: ignored, so late failures do not extend the open period."""
        args = [self.clock(), self.config.failure_threshold]
        self._log(self._failure(keys=[self.key], args=args))

    def call(
        self,
        fn: Callable[[], T],
        counts_as_failure: Callable[[BaseException], bool] = is_counted_failure,
    ) -> T:
        """Run ``fn`` through the breaker; return its result or re-raise its exception.
        A counted exception is a failure. Any other (a 4xx, a bug) proves nothing about the
        dependency: failures are left alone and a half-open probe slot is freed. A Redis
        error while recording ``fn``'s outcome is logged, never raised over it."""
        self.before_call()
        try:
            result = fn()
        except BaseException as exc:
            self._settle(self.record_failure if counts_as_failure(exc) else self._free_probe)
            raise
        self._settle(self.record_success)
        return result

    def snapshot(self) -> BreakerState:
        """The state as stored now; closed with no failures if never used."""
        fields = ("state", "failures", "opened_at", "probes")
        state, failures, opened_at, probes = self.client.hmget(self.key, fields)
        return BreakerState(
            state=state.decode() if state else "closed",
            failures=int(failures or 0),
            opened_at=float(opened_at) if opened_at else None,
            probes=int(probes) if state == b"half_open" else 0,
        )

    def reset(self) -> None:
        """Close the circuit and forget its failures, for every process."""
        self.client.delete(self.key)

    def _free_probe(self) -> None:
        self._release(keys=[self.key])

    def _settle(self, record: Callable[[], None]) -> None:
        try:
            record()
        except redis.RedisError:
            logger.warning("circuit %r: outcome not recorded", self.name, exc_info=True)

    def _log(self, new_state: bytes | None) -> None:
        if new_state:
            logger.warning("circuit %r is now %s", self.name, new_state.decode())
