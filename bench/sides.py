"""The two things compared: the deployment and the plain-defaults baseline.

A :class:`Side` says, per role of a benchmark task, which compose service runs it
and which queue it travels on; both sides send the same task names, so each
side's routing (or the lack of it) decides the queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from celeryref import queues

NOOP = "bench.tasks.default.noop"
STAMP = "bench.tasks.default.stamp"
SLEEP = "bench.tasks.default.sleep_stamp"
FAN_IN = "bench.tasks.default.fan_in"
BURN = "bench.tasks.cpu_intensive.burn_cpu"
PING = "bench.tasks.priority.ping"

T = TypeVar("T")

#: The label of :func:`plain_guarded`'s side (not "baseline...": reports find the
#: baseline's rows by that prefix).
GUARDED_LABEL = "plain Celery + guarantees"
#: Redis key of messages delivered but not yet acknowledged (kombu's default).
UNACKED = "unacked"
#: kombu's Redis priority separator when an app does not set one (the baseline's).
_KOMBU_SEP = "\x06\x16"


@dataclass(frozen=True)
class Side:
    """One column of the comparison."""

    label: str
    #: Client app that sends the tasks (its routes choose the queues); it also
    #: drives this side's workers by remote control.
    app: Any
    #: Redis client on this side's broker database.
    redis: Any
    #: Role (``default``, ``cpu``, ``priority``) -> (compose service, queue).
    roles: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Priority the ``ping`` is sent with (``None``: the app's default).
    ping_priority: int | None = None

    def service(self, role: str) -> str:
        return self.roles[role][0]

    def queue(self, role: str) -> str:
        return self.roles[role][1]


def deployment(app: Any, redis: Any) -> Side:
    return Side(
        "deployment",
        app,
        redis,
        {
            "default": ("worker", queues.DEFAULT),
            "cpu": ("worker-cpu", queues.CPU_INTENSIVE),
            "priority": ("worker-priority", queues.PRIORITY),
        },
        ping_priority=queues.PRIORITY_TOP,
    )


def plain_defaults(app: Any, redis: Any) -> Side:
    # Imported here: the baseline module reads the settings, which the harness
    # points at the benchmark stack only once it has parsed its arguments.
    from bench import baseline

    role = ("worker-baseline", baseline.QUEUE)
    return Side("baseline", app, redis, {"default": role, "cpu": role, "priority": role})


def plain_guarded(app: Any, redis: Any) -> Side:
    """Plain Celery with the spec's delivery guarantees (``bench.baseline.GUARDED``);
    ``app`` sends to its queue."""
    role = ("worker-baseline-guarded", app.conf.task_default_queue)
    return Side(GUARDED_LABEL, app, redis, {"default": role})


def queue_keys(queue: str) -> list[str]:
    """Every Redis list that may hold ``queue``'s messages (either priority scheme)."""
    keys = [queue]
    for sep in (queues.PRIORITY_SEP, _KOMBU_SEP):
        keys += [f"{queue}{sep}{step}" for step in queues.PRIORITY_STEPS if step]
    return keys


def depth(redis: Any, queue_names: Iterable[str]) -> int:
    """Messages waiting in ``queue_names`` plus every unacknowledged message."""
    pipe = redis.pipeline(transaction=False)
    for queue in queue_names:
        for key in queue_keys(queue):
            pipe.llen(key)
    pipe.hlen(UNACKED)
    return int(sum(pipe.execute()))


def wait_drained(
    redis: Any, queue_names: Iterable[str], timeout: float, poll: float = 0.02
) -> float:
    """Wait until :func:`depth` is 0; ``time.perf_counter()`` when it was seen."""
    names = list(queue_names)
    deadline = time.perf_counter() + timeout
    while (now := time.perf_counter()) < deadline:
        if depth(redis, names) == 0:
            return now
        time.sleep(poll)
    raise TimeoutError(f"{names} not drained in {timeout:.0f}s ({depth(redis, names)} left)")


def purge(redis: Any, queue: str) -> None:
    """Drop the messages still waiting in ``queue`` (not the ones a worker holds)."""
    redis.delete(*queue_keys(queue))


def turns(items: Sequence[T], rounds: int) -> Iterator[T]:
    """Each of ``items`` once per round for ``rounds`` rounds, the order reversed every
    other round: the machine's drifting load falls on every item alike."""
    for r in range(rounds):
        yield from items if r % 2 == 0 else items[::-1]
