"""Benchmark map-reduce against the running Compose stack (a command, not a test).

::

    python -m celeryref.mapreduce.bench --items 1000000 [--workers 1,2] [--project celeryref]

Needs the stack up (``make up``) and reaches it through its loopback ports
(``REDIS_HOST_PORT``, ``POSTGRES_HOST_PORT``; secrets from the environment or
``.env``). In one run it: generates (or reuses) the dataset; runs the
single-process reference inside the ``app`` container; for each worker count
scales ``worker-cpu`` (``docker compose up -d --scale worker-cpu=N``), restarts
it and runs the map-reduce job (best of ``--repeat``); then runs the naive variant (whole partitions
fetched with ``fetchall``, every processed item shipped through the result
backend, :mod:`celeryref.tasks.cpu_intensive.mapreduce_naive`). Every result is
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
from pathlib import Path
from typing import Any

logger = logging.getLogger("celeryref.mapreduce.bench")


def point_at_stack(env: dict[str, str], dotenv: Path) -> None:
    """Make this process's settings talk to the stack's loopback ports (before import)."""
    values: dict[str, str] = {}
    if dotenv.is_file():
        for line in dotenv.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    for key in ("REDIS_PASSWORD", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        if key not in env and key in values:
            env[key] = values[key]
    env.update(
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=env.get("REDIS_HOST_PORT", "6379"),
        POSTGRES_HOST="127.0.0.1",
        POSTGRES_PORT=env.get("POSTGRES_HOST_PORT", "5432"),
    )


def result_backend_bytes(before: set[bytes]) -> tuple[int, set[bytes]]:
    """Bytes of task results stored since ``before`` (a snapshot of result keys)."""
    import redis

    from celeryref.settings import settings

    client = redis.Redis.from_url(settings.result_backend_url)
    keys = set(client.scan_iter("celery-task-meta-*", count=1000))
    return sum(int(client.strlen(k)) for k in keys - before), keys


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

    from celeryref.mapreduce import planning, store
    from celeryref.mapreduce.functions import prepare
    from celeryref.tasks.cpu_intensive import mapreduce_naive as naive

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


def measure(
    stack: Any,
    report: Any,
    args: argparse.Namespace,
    approach: str,
    containers: int,
    expected: Any,
    keys: set[bytes],
) -> set[bytes]:
    """Run ``approach`` on ``containers`` fresh workers (best of ``--repeat``); add the row."""
    from celeryref.mapreduce.benchstack import summarize_memory

    options, runs, processes = json.loads(args.options), [], 0
    for attempt in range(args.repeat if approach == "map-reduce" else 1):
        logger.info("%s, %d worker-cpu container(s), run %d", approach, containers, attempt + 1)
        processes = stack.fresh_workers(containers)
        idle = summarize_memory(stack.worker_memory())
        runner = run_mapreduce if approach == "map-reduce" else run_naive
        measured = runner(report.data["dataset"], args.function, options, args.partition_size)
        memory = summarize_memory(stack.worker_memory())
        memory["idle_process_mib"] = idle["process_peak_mib"]
        stored, keys = result_backend_bytes(keys)
        if "forget" in measured:  # the naive results are huge: drop them from Redis now
            measured["forget"].parent.forget()
            measured["forget"].forget()
        runs.append((measured["seconds"], memory, stored, measured["result"] == expected))
        logger.info("%.2fs, exact=%s", measured["seconds"], runs[-1][3])
    seconds, memory, stored, _ = min(runs, key=lambda r: r[0])
    exact = all(r[3] for r in runs)
    samples = [round(r[0], 2) for r in runs]
    label = f"{approach} ({containers} worker-cpu)"
    report.add_run(label, containers, processes, seconds, memory, stored, exact, samples)
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celeryref.mapreduce.bench")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--function", default="aggregation")
    parser.add_argument("--options", default='{"group_by": "region", "value": "amount * quantity"}')
    parser.add_argument("--partition-size", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2", help="worker-cpu container counts")
    parser.add_argument("--naive-workers", default="2", help="counts for the naive run ('' = skip)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N (not naive)")
    parser.add_argument("--project", default=os.environ.get("COMPOSE_PROJECT_NAME", "celeryref"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    point_at_stack(os.environ, Path(".env"))  # type: ignore[arg-type]

    from celeryref.mapreduce import benchreport
    from celeryref.mapreduce.benchstack import Stack

    options = json.loads(args.options)
    stack, dataset = Stack(args.project), f"bench-{args.items}-seed{args.seed}"
    report = benchreport.Report.start(args, sys.argv, dataset)
    logger.info("dataset %s (%d items)", dataset, args.items)
    report.data["generate"] = ensure_dataset(dataset, args.items, args.seed)

    logger.info("reference: one process in the app container, best of %d", args.repeat)
    refs = [run_reference(stack, dataset, args.function, options) for _ in range(args.repeat)]
    ref = min(refs, key=lambda r: r["seconds"])
    expected = ref["result"]
    peak = {"process_peak_mib": round(ref["peak_rss_mib"], 1)}
    samples = [round(r["seconds"], 2) for r in refs]
    exact = all(r["result"] == expected for r in refs)
    report.add_run("reference (1 process)", 0, 1, ref["seconds"], peak, 0, exact, samples)

    plans = [("map-reduce", int(n)) for n in args.workers.split(",") if n]
    plans += [("naive", int(n)) for n in args.naive_workers.split(",") if n]
    initial_workers = len(stack.worker_containers())
    try:
        keys = result_backend_bytes(set())[1]
        for approach, containers in plans:
            keys = measure(stack, report, args, approach, containers, expected, keys)
    finally:
        stack.scale(initial_workers)  # leave worker-cpu as it was found

    sys.stdout.write(report.write(args.out))
    return 0 if all(run["exact"] for run in report.data["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
