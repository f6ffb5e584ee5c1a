"""``python -m celeryref.mapreduce start|status``: run map-reduce jobs from a shell.

::

    python -m celeryref.mapreduce start --dataset sales --function aggregation \\
        --options '{"group_by": "region", "value": "amount * quantity"}' [--partitions 8] [--wait]
    python -m celeryref.mapreduce status JOB_ID

``start`` prints the job id (and, with ``--wait``, progress lines and the final
status); ``status`` prints the job as JSON, with its result once it succeeded.
Exit status: 0 done or queued, 1 the job failed, 2 bad arguments or no such job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from celeryref.errors import InvalidArguments, NotFound
from celeryref.mapreduce import jobs
from celeryref.mapreduce.reference import parse_options


def _write_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def wait(job_id: str, timeout: float, out: TextIO, every: float = 0.5) -> dict[str, Any]:
    """Poll the job until it is final (or ``timeout``), printing progress changes."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        status = jobs.status(job_id)
        progress = (status["status"], status["partitions_done"], status["partitions_total"])
        if progress != last:
            out.write(
                f"{status['status']}: {status['partitions_done']}/{status['partitions_total']}"
                f" partitions, {status['items_processed']}/{status['items_total']} items\n"
            )
            out.flush()
            last = progress
        if jobs.is_final(status) or time.monotonic() > deadline:
            return status
        time.sleep(every)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m celeryref.mapreduce")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="queue a job; prints its id")
    start.add_argument("--dataset", required=True)
    start.add_argument("--function", required=True, help="validation, transformation, ...")
    start.add_argument("--options", default="{}", help="JSON object of function options")
    sizing = start.add_mutually_exclusive_group()
    sizing.add_argument("--partitions", type=int, help="number of map tasks")
    sizing.add_argument("--partition-size", type=int, help="items per map task")
    start.add_argument("--wait", action="store_true", help="follow progress until done")
    start.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")
    status = commands.add_parser("status", help="print a job's status and result")
    status.add_argument("job_id")
    args = parser.parse_args(argv)
    try:
        if args.command == "status":
            result = jobs.status(args.job_id)
            _write_json(out, result)
            return 1 if result["status"] == "failed" else 0
        job_id = jobs.start(
            args.dataset,
            args.function,
            parse_options(args.options),
            partitions=args.partitions,
            partition_size=args.partition_size,
        )
    except (InvalidArguments, NotFound) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    out.write(f"{job_id}\n")
    if not args.wait:
        return 0
    final = wait(job_id, args.timeout, out)
    _write_json(out, final)
    return 1 if final["status"] != "succeeded" else 0


if __name__ == "__main__":
    sys.exit(main())
