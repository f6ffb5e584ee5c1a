"""Load with faults: thousands of mixed drills on every queue while every worker service loses
a container (`docker kill`) and gets it back; counted exactly afterwards.

Scenario 16 of docs/RELIABILITY.md. ``FAULT_LOAD_TASKS`` sets the count (default
5000, what fits in about 5 minutes on a 2-core machine; the target is 20000:
``FAULT_LOAD_TASKS=20000``). The run happens once per module (:func:`load_run`);
each test checks one property of its outcome.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field

import pytest
from celery.result import AsyncResult

from tests.stack.conftest import wait_for
from tests.stack.faults_support import (
    DRILLS,
    REDELIVERY_DEADLINE,
    WORKER_OF,
    FaultStack,
    effect_counts,
    new_key,
    ready_stack,
    record_measurement,
    run_count,
    wait_until_drained,
)

#: Drills sent (20000 is the target; the default fits the suite's time budget).
LOAD_TASKS = int(os.environ.get("FAULT_LOAD_TASKS", "5000"))
#: Ceiling of any worker container's memory during the run (MiB). Pool processes are
#: recycled past WORKER_MAX_MEMORY_PER_CHILD (256 MiB); a leak would cross this.
MEMORY_BOUND_MIB = 1024
#: Seconds between memory samples.
SAMPLE_EVERY = 3.0

_UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "kB": 1 / 1024, "MiB": 1.0, "MB": 1.0, "GiB": 1024.0}


def mebibytes(usage: str) -> float:
    """``"206.2MiB / 23.54GiB"`` -> 206.2."""
    match = re.match(r"([\d.]+)\s*([kKMG]?i?B)", usage)
    assert match, usage
    return float(match.group(1)) * _UNITS[match.group(2)]


class MemorySampler(threading.Thread):
    """Peak memory per worker service, sampled with `docker stats` until stopped."""

    def __init__(self, stack: FaultStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.peaks: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_EVERY):
            out = self.stack.docker("stats", "--no-stream", "--format", "{{json .}}", check=False)
            for line in out.splitlines():
                row = json.loads(line)
                for service in WORKER_OF.values():
                    if re.fullmatch(rf"celeryref-faults-{service}-\d+", row["Name"]):
                        used = mebibytes(row["MemUsage"])
                        self.peaks[service] = max(self.peaks.get(service, 0.0), used)


@dataclass
class LoadRun:
    """What one load run left behind."""

    stack: FaultStack
    prefix: str
    ids: list[str] = field(default_factory=list)
    peaks: dict[str, float] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def load_run(request: pytest.FixtureRequest) -> LoadRun:
    """LOAD_TASKS idempotent drills over all five queues and ten priorities (every tenth
    holds 50 ms); at 5%, 10%, ... 25% done, one worker service after the other gets its
    container SIGKILLed and started again. Returns once nothing of the run is left in Redis."""
    stack = ready_stack(request.config)
    queues = list(WORKER_OF)
    run = LoadRun(stack, new_key("load"))
    sampler = MemorySampler(stack)
    sampler.start()
    started = time.monotonic()

    def publish() -> None:
        with stack.app.producer_or_acquire() as producer:
            for i in range(LOAD_TASKS):
                result = stack.app.send_task(
                    f"{DRILLS}.record_event",
                    args=[f"{run.prefix}-{i}", 0.05 if i % 10 == 0 else 0],
                    queue=queues[i % len(queues)],
                    priority=i % 10,
                    producer=producer,
                )
                run.ids.append(str(result.id))

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        for n, service in enumerate(WORKER_OF.values(), start=1):
            threshold = n * LOAD_TASKS // 20
            wait_for(
                lambda: effect_counts(stack, run.prefix)[0] >= threshold,  # noqa: B023 - now
                600,
                f"{n * 5}% of the drills before killing {service}",
                every=1,
            )
            container = stack.container_id(service)
            stack.docker("kill", container)
            stack.docker("start", container)
            run.killed.append(service)
        publisher.join(timeout=600)
        assert len(run.ids) == LOAD_TASKS, "the publisher did not finish"
        # Drained = every drill ran, or its message is gone: counting is final after this.
        wait_until_drained(stack, run.ids, queues, LOAD_TASKS / 5 + REDELIVERY_DEADLINE)
    finally:
        sampler.done.set()
        sampler.join()
    run.peaks = dict(sampler.peaks)

    record_measurement("s16_load_tasks", LOAD_TASKS)
    record_measurement("s16_load_seconds", time.monotonic() - started)
    record_measurement("s16_redeliveries", run_count(stack, run.prefix) - LOAD_TASKS)
    record_measurement("s16_peak_memory_mib", {k: round(v) for k, v in run.peaks.items()})
    record_measurement("s16_effects_keys_rows", list(effect_counts(stack, run.prefix)))
    return run


def test_every_worker_service_lost_a_container_during_the_load(load_run: LoadRun) -> None:
    """The faults happened: each of the five worker services was killed once, mid-load."""
    assert load_run.killed == list(WORKER_OF.values())


def test_under_load_with_killed_workers_no_effect_is_duplicated(load_run: LoadRun) -> None:
    """No idempotency key has two effects, however often its message was redelivered."""
    keys, rows = effect_counts(load_run.stack, load_run.prefix)
    assert rows == keys


def test_under_load_with_killed_workers_nothing_is_dead_lettered(load_run: LoadRun) -> None:
    """Killed workers make tasks run again, never fail: no dead letter from the run."""
    count = load_run.stack.sql(
        "SELECT count(*) FROM dead_letters WHERE task_id = ANY(%s)", (load_run.ids,)
    )
    assert count == [(0,)]


def test_under_load_the_memory_of_every_worker_stays_bounded(load_run: LoadRun) -> None:
    """Every worker container's peak memory (docker stats) stayed below MEMORY_BOUND_MIB."""
    assert set(load_run.peaks) == set(WORKER_OF.values())
    assert max(load_run.peaks.values()) < MEMORY_BOUND_MIB, load_run.peaks


def test_under_load_with_killed_workers_every_drill_completed(load_run: LoadRun) -> None:
    """Every one of the LOAD_TASKS drills has its effect and a SUCCESS result: none lost
    (F9 closed: a worker killed between a pop and its record cannot exist any more, the
    Lua pop records the message as unacknowledged in the same step, and the visibility
    sweep gives a killed worker's messages to another one)."""
    stack = load_run.stack
    done = {
        r[0]
        for r in stack.sql(
            "SELECT DISTINCT key FROM drill_effects WHERE key LIKE %s", (f"{load_run.prefix}-%",)
        )
    }
    missing = {
        load_run.ids[i]: stack.state(load_run.ids[i])
        for i in range(LOAD_TASKS)
        if f"{load_run.prefix}-{i}" not in done
    }
    record_measurement("s16_lost", missing)
    assert missing == {}, f"{len(missing)} of {LOAD_TASKS} never ran"
    sample = [i for i in load_run.ids[:: max(1, LOAD_TASKS // 200)] if i not in missing]
    assert {AsyncResult(i, app=stack.app).state for i in sample} == {"SUCCESS"}
