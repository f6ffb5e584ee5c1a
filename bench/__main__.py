"""``python -m bench [--quick | --medium] [--only WORKLOAD ...]`` (``make bench``).

Builds and starts the compose stack as project ``celeryref-bench`` (host ports
+30000) with the baseline worker, runs the workloads against the deployment and
the baseline in turn, prints the tables, writes ``docs/BENCHMARKS.md``,
``docs/benchmarks/bench.json`` and ``docs/benchmarks/bench-*.png``, and removes
the stack (``KEEP_BENCH=1`` keeps it). Needs no input; run from the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import sys
from pathlib import Path

from bench import stack as bench_stack
from bench import workloads
from celeryref.observability import logs
from devtools.harness import read_env_file

logger = logging.getLogger("bench")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    size.add_argument("--medium", action="store_true", help="about 30 min on 2 cores")
    parser.add_argument("--only", nargs="+", choices=list(workloads.WORKLOADS), metavar="WORKLOAD",
                        help=f"run only these ({', '.join(workloads.WORKLOADS)})")  # fmt: skip
    parser.add_argument("--no-build", action="store_true", help="use the existing APP_IMAGE")
    parser.add_argument("--reuse-stack", action="store_true",
                        help="use the running stack as it is (development)")  # fmt: skip
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="where reports go")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logs.configure(logging.INFO)
    dotenv = read_env_file(Path(".env"))
    os.environ.update(bench_stack.stack_env(os.environ, dotenv))

    # Settings are read at import: only now may the apps be built.
    import redis

    from bench import baseline, report, sides
    from celeryref.celery_app import app
    from celeryref.settings import settings

    sizes = (
        workloads.QUICK if args.quick else workloads.MEDIUM if args.medium else workloads.Sizes()
    )
    chosen = args.only or list(workloads.WORKLOADS)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    images = [
        os.environ[k] for k in ("APP_IMAGE", "REDIS_IMAGE", "POSTGRES_IMAGE") if k in os.environ
    ]
    base_app = baseline.create_baseline(settings, env={})
    guarded_app = baseline.create_baseline(settings, env=baseline.GUARDED)
    stack = bench_stack.BenchStack(control=app, baseline_control=base_app)
    base_redis = redis.Redis.from_url(base_app.conf.broker_url)  # both plain sides' broker
    bench = workloads.Bench(
        stack,
        sides.deployment(app, redis.Redis.from_url(settings.broker_url)),
        sides.plain_defaults(base_app, base_redis),
        sizes,
        pg_dsn=settings.database_dsn,
        guarded=sides.plain_guarded(guarded_app, base_redis),
    )
    logger.info("bringing up %s (ports +%d)", bench_stack.PROJECT, bench_stack.PORT_OFFSET)
    if not args.reuse_stack:
        stack.down()
        stack.up(build=not args.no_build)
    stack.wait_workers("worker-baseline", 1)
    data = report.start(command, dataclasses.asdict(sizes), images)
    failed = []
    try:
        for name in chosen:
            logger.info("workload %s", name)
            try:
                data["results"][name] = workloads.WORKLOADS[name](bench)
            except Exception:
                logger.exception("workload %s failed", name)
                failed.append(name)
            logger.info("%s: %s", name, data["results"].get(name))
    finally:
        if os.environ.get("KEEP_BENCH") != "1":
            stack.down()
    data["failed"] = failed
    sys.stdout.write(report.write(data, args.docs))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
