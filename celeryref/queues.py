"""Queue names, task priorities and routing: the one place they are spelled.

Priorities on Redis
-------------------
kombu's Redis transport emulates priorities with one list per priority step and
pops the lists in step order, so **0 is the highest priority** and 9 the lowest
(the opposite of RabbitMQ, whose ``x-max-priority`` queue argument Redis simply
ignores). Messages sent without a priority get kombu's default of 0, i.e. the top,
so the app sets ``task_default_priority`` to :data:`PRIORITY_NORMAL` and urgent
work explicitly asks for :data:`PRIORITY_TOP`.
"""

from __future__ import annotations

from typing import Final

DEFAULT: Final = "default"
CPU_INTENSIVE: Final = "cpu_intensive"
IO_INTENSIVE: Final = "io_intensive"
PRIORITY: Final = "priority"
SCHEDULED: Final = "scheduled"

#: Every queue the deployment consumes, in the order the design card lists them.
ALL_QUEUES: Final = (DEFAULT, CPU_INTENSIVE, IO_INTENSIVE, PRIORITY, SCHEDULED)

#: Highest priority on Redis (popped first).
PRIORITY_TOP: Final = 0
#: Priority of messages that do not ask for one.
PRIORITY_NORMAL: Final = 5
#: Lowest priority on Redis (popped last): bulk and backfill work.
PRIORITY_BULK: Final = 9

#: One Redis list per step, so every priority 0..9 is distinct.
PRIORITY_STEPS: Final = tuple(range(10))

#: Separator between a queue name and its priority step in Redis keys:
#: ``cpu_intensive`` (priority 0), ``cpu_intensive:5``, ...
PRIORITY_SEP: Final = ":"

#: Task modules are routed to queues by name (``celeryref.tasks.<queue>.*``).
TASK_PACKAGE: Final = "celeryref.tasks"


def task_routes(packages: tuple[str, ...] = (TASK_PACKAGE,)) -> dict[str, dict[str, str]]:
    """Route every task in ``<package>.<queue>`` to the queue ``<queue>``."""
    return {
        f"{package}.{queue}.*": {"queue": queue} for package in packages for queue in ALL_QUEUES
    }


def redis_keys(queue: str) -> list[str]:
    """The Redis list keys that hold ``queue``'s messages, highest priority first."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]
