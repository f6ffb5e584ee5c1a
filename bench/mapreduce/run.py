"""Benchmark map-reduce against the running Compose stack (a command, not a test).

::

    python -m bench.mapreduce.run --items 1000000 [--workers 1,2] [--project celeryref]

Needs the stack up (``make up``) and reaches it through its loopback ports
(``REDIS_HOST_PORT``, ``POSTGRES_HOST_PORT``; secrets from the environment or
``.env``). In one run it: generates (or reuses) the dataset; runs the
single-process reference inside the ``app`` container; for each worker count
scales ``worker-cpu`` (``docker compose up -d --scale worker-cpu=N``), restarts
it and runs the map-reduce job (``--repeat`` rounds, interleaved, best
reported); then runs the naive variant (whole partitions
fetched with ``fetchall``, every processed item shipped through the result
backend, :mod:`bench.tasks.cpu_intensive.naive_mapreduce`). Every result is
compared with the reference. Writes ``docs/benchmarks/mapreduce.{json,md,png}``
(:mod:`.benchreport`) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.mapreduce import stack as benchstack
from celeryref.observability import logs
from devtools.harness import PeakSampler

logger = logging.getLogger("bench.mapreduce.run")


def ensure_dataset(name: str, items: int, seed: int) -> dict[str, Any]:
    from celeryref.errors import InvalidArguments
    from celeryref.mapreduce import generate, store

    try:
        if store.get_dataset(name).item_count == items:
            return {"reused": True}
    except InvalidArguments:
        pass
    started = time.perf_counter()
    generate.generate(name, items, seed, replace=True)
    seconds = time.perf_counter() - started
    return {"reused": False, "seconds": round(seconds, 2), "items_per_s": round(items / seconds)}


def run_reference(
    stack: Any, dataset: str, function: str, options: dict[str, Any]
) -> dict[str, Any]:
    out = stack.exec_app(
        ["python", "-m", "celeryref.mapreduce.reference", "--measure", "--dataset", dataset,
         "--function", function, "--options", json.dumps(options)]
    )  # fmt: skip
    measured: dict[str, Any] = json.loads(out)
    return measured


def run_mapreduce(
    dataset: str, function: str, options: dict[str, Any], size: int
) -> dict[str, Any]:
    from celeryref.mapreduce import jobs

    job_id = jobs.start(dataset, function, options, partition_size=size)
    while not jobs.is_final(status := jobs.status(job_id)):
        time.sleep(0.2)
    if status["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} failed: {status['error']}")
    return {"seconds": status["seconds"], "result": status["result"], "job_id": job_id}


def run_naive(dataset: str, function: str, options: dict[str, Any], size: int) -> dict[str, Any]:
    from celery import chord

    from bench.tasks.cpu_intensive import naive_mapreduce as naive
    from celeryref.mapreduce import planning, store
    from celeryref.mapreduce.functions import prepare

    checked = prepare(function, options)
    found = store.get_dataset(dataset)
    normalize = bool(checked.options.get("normalize", False))
    header = [
        naive.naive_map.si(found.id, p.start, p.end, normalize)
        for p in planning.plan(found.item_count, partition_size=size)
    ]
    started = time.perf_counter()
    result = chord(header)(naive.naive_reduce.s(function, checked.options))
    value = result.get(timeout=1800)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "result": value, "forget": result}


@dataclass
class Sample:
    """One measured run."""

    seconds: float
    memory: dict[str, Any]
    result_backend_bytes: int
    result: Any
    processes: int


def measure_once(stack: Any, args: argparse.Namespace, approach: str, containers: int) -> Sample:
    """Run ``approach`` once on ``containers`` freshly restarted ``worker-cpu`` containers."""
    options = json.loads(args.options)
    dataset = f"bench-{args.items}-seed{args.seed}"
    if approach == "reference":
        ref = run_reference(stack, dataset, args.function, options)
        peak = {"process_peak_mib": round(ref["peak_rss_mib"], 1)}
        return Sample(ref["seconds"], peak, 0, ref["result"], 1)
    processes = stack.fresh_workers(containers)
    idle = benchstack.summarize_memory(stack.worker_memory())
    _, keys = benchstack.result_backend_bytes(set())
    runner = run_mapreduce if approach == "map-reduce" else run_naive
    with PeakSampler(stack.process_peak_mib) as sampler:
        measured = runner(dataset, args.function, options, args.partition_size)
    memory = {
        **benchstack.summarize_memory(stack.worker_memory()),
        "idle_process_mib": idle["process_peak_mib"],
    }
    memory["process_peak_mib"] = round(max(memory["process_peak_mib"], sampler.peak), 1)
    stored, _ = benchstack.result_backend_bytes(keys)
    if "forget" in measured:  # the naive results are huge: drop them from Redis now
        measured["forget"].parent.forget()
        measured["forget"].forget()
    return Sample(measured["seconds"], memory, stored, measured["result"], processes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mapreduce.run")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--function", default="aggregation")
    parser.add_argument("--options", default='{"group_by": "region", "value": "amount * quantity"}')
    parser.add_argument("--partition-size", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2", help="worker-cpu container counts")
    parser.add_argument("--naive-workers", default="2", help="counts for the naive run ('' = skip)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N rounds (naive: once)")
    parser.add_argument("--project", default=os.environ.get("COMPOSE_PROJECT_NAME", "celeryref"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    logs.configure(logging.INFO)
    benchstack.point_at_stack(os.environ, Path(".env"))

    from bench.mapreduce import report as benchreport

    stack, dataset = benchstack.Stack(args.project), f"bench-{args.items}-seed{args.seed}"
    report = benchreport.Report.start(args, sys.argv, dataset)
    logger.info("dataset %s (%d items)", dataset, args.items)
    report.data["generate"] = ensure_dataset(dataset, args.items, args.seed)

    # Repetitions interleave (reference, 1 container, 2 containers, reference, ...),
    # so a change of load on a shared machine hits every row alike.
    plans = [("reference", 0)]
    plans += [("map-reduce", int(n)) for n in args.workers.split(",") if n]
    rounds = [plans] * args.repeat + [
        [("naive", int(n)) for n in args.naive_workers.split(",") if n]
    ]
    samples: dict[tuple[str, int], list[Sample]] = {}
    initial_workers = len(stack.worker_containers())
    try:
        for number, plan in enumerate(rounds, 1):
            for approach, containers in plan:
                logger.info(
                    "round %d: %s, %d worker-cpu container(s)", number, approach, containers
                )
                sample = measure_once(stack, args, approach, containers)
                samples.setdefault((approach, containers), []).append(sample)
                logger.info("%.2fs", sample.seconds)
    finally:
        stack.scale(benchstack.SERVICE, initial_workers)  # leave worker-cpu as it was
    expected = samples[("reference", 0)][0].result
    for (approach, containers), runs in samples.items():
        best = min(runs, key=lambda r: r.seconds)
        label = (
            "reference (1 process)"
            if approach == "reference"
            else f"{approach} ({containers} worker-cpu)"
        )
        report.add_run(
            label,
            containers,
            best.processes,
            best.seconds,
            best.memory,
            best.result_backend_bytes,
            all(r.result == expected for r in runs),
            [round(r.seconds, 2) for r in runs],
        )

    sys.stdout.write(report.write(args.out))
    return 0 if all(run["exact"] for run in report.data["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
