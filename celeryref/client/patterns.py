"""The demo's second table: every pattern beyond one task per queue, each checked.

Canvas (chain, group, chord, chunks, map, starmap, a map-reduce chord), the DAG
engine's built-in ``data_processing`` workflow and a map-reduce job over a Postgres
dataset. Everything is started first and awaited afterwards, so the patterns run
side by side on the workers; each row compares what came back with the value it
must be (for the map-reduce job: the single-process reference over the same items).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from celery.canvas import Signature

from celeryref import queues
from celeryref.client import canvas as canvas_demo
from celeryref.errors import InvalidArguments
from celeryref.mapreduce import generate, jobs, reference, store
from celeryref.workflows import engine, status

#: Dataset the demo (re)generates for its map-reduce job.
DEMO_DATASET = "demo"
DEMO_ITEMS = 20_000
AGGREGATION = {"group_by": "category", "value": "amount * quantity"}
RECORDS = [
    {"id": 1, "name": " alpha ", "value": 10, "category": "A"},
    {"id": 2, "name": "beta", "value": 30, "category": "b"},
    {"id": 3, "name": "gamma", "value": 20},
    {"id": 4, "name": "", "value": 5},
]
#: Recipient of the workflow's summary mail (the compose file's mail sink keeps it).
NOTIFY = "demo@example.com"

#: Waits (at most the given seconds) for the pattern's value; raises when it failed.
Waiter = Callable[[float], Any]


@dataclass(frozen=True)
class Pattern:
    name: str
    where: str
    expected: Any
    #: What is compared with ``expected`` (and shown): the value, or a summary of it.
    shown: Callable[[Any], Any]
    wait: Waiter


def _canvas(signature: Signature) -> Waiter:
    result = signature.apply_async()
    return lambda timeout: result.get(timeout=timeout, propagate=True)


def _poll(read: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Waiter:
    def wait(timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not finished after {timeout:.0f}s")
            time.sleep(0.25)

    return wait


def _analyzed(state: status.ExecutionState) -> Any:
    result = state.step("analyze").result or {}
    return result.get("analysis", {}).get("count")


def _workflow() -> Pattern:
    payload = {"records": RECORDS, "title": "Demo workflow", "notify": [NOTIFY]}
    execution_id = engine.start("data_processing", payload)
    wait = _poll(
        lambda: status.load(execution_id),
        lambda state: state.status != "running",
        f"workflow {execution_id}",
    )
    return Pattern(
        "workflow data_processing (6 steps)",
        "DAG engine",
        "succeeded: 6 of 6 steps, 3 records analyzed",
        lambda s: (
            f"{s.status}: {sum(step.status == 'succeeded' for step in s.steps)} of "
            f"{len(s.steps)} steps, {_analyzed(s)} records analyzed"
        ),
        wait,
    )


def _mapreduce() -> Pattern:
    with contextlib.suppress(InvalidArguments):  # an earlier demo made it: reuse it
        generate.generate(DEMO_DATASET, DEMO_ITEMS, seed=1)
    items = store.get_dataset(DEMO_DATASET).item_count
    job_id = jobs.start(DEMO_DATASET, "aggregation", AGGREGATION, partitions=4)
    expected = reference.run(DEMO_DATASET, "aggregation", AGGREGATION)
    wait = _poll(lambda: jobs.status(job_id), jobs.is_final, f"map-reduce job {job_id}")
    return Pattern(
        f"map-reduce job, {items} items",
        queues.CPU_INTENSIVE,
        "succeeded, equal to the single-process reference",
        lambda s: (
            f"{s['status']}, {'equal' if s['result'] == expected else 'NOT equal'} to"
            " the single-process reference"
        ),
        wait,
    )


def start() -> list[Pattern]:
    """Start every pattern; nothing is awaited yet."""
    pairs = [(i, i) for i in range(10)]

    def flat(chunked: list[list[float]]) -> float:
        return sum(sum(part) for part in chunked)

    def same(value: Any) -> Any:
        return value

    d = queues.DEFAULT
    return [
        Pattern("chain (2+3)*4, squared", d, 400, same, _canvas(canvas_demo.chain_demo(2, 3, 4))),
        Pattern(
            "group of squares 1..4",
            d,
            [1, 4, 9, 16],
            same,
            _canvas(canvas_demo.group_demo([1, 2, 3, 4])),
        ),
        Pattern(
            "chord: sum of squares 0..9", d, 285, same, _canvas(canvas_demo.chord_demo(range(10)))
        ),
        Pattern(
            "chunks: 10 adds in 4 messages", d, 90, flat, _canvas(canvas_demo.chunks_demo(pairs, 3))
        ),
        Pattern("map: squares 1..3", d, [1, 4, 9], same, _canvas(canvas_demo.map_demo([1, 2, 3]))),
        Pattern(
            "starmap: add over 2 pairs",
            d,
            [3, 7],
            same,
            _canvas(canvas_demo.starmap_demo([(1, 2), (3, 4)])),
        ),
        Pattern(
            "map-reduce chord over 0..99",
            d,
            328350,
            same,
            _canvas(canvas_demo.map_reduce_demo(list(range(100)), 10)),
        ),
        _workflow(),
        _mapreduce(),
    ]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def report(patterns: list[Pattern], timeout: float, out: TextIO) -> int:
    """Await every pattern and print one checked row each; the number that failed."""
    failures = 0
    out.write(f"{'pattern':<38} {'where':<14} {'check':<6} result\n")
    for pattern in patterns:
        try:
            shown = pattern.shown(pattern.wait(timeout))
            ok = shown == pattern.expected
            text = _text(shown) if ok else f"{_text(shown)}, expected {_text(pattern.expected)}"
        except Exception as exc:
            ok, text = False, f"FAILED: {exc!r}"
        failures += not ok
        out.write(f"{pattern.name:<38} {pattern.where:<14} {'ok' if ok else 'WRONG':<6} {text}\n")
    return failures
