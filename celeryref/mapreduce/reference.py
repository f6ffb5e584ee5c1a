"""The single-process reference: one pass over the whole dataset, no partitions.

``python -m celeryref.mapreduce.reference --dataset NAME --function F [--options JSON]``
prints the result as JSON (with ``--measure``: ``{"result", "seconds", "peak_rss_mib"}``,
what the benchmark reads). A distributed job over the same dataset must produce
exactly this (the integration tests and the benchmark compare them); it is also
the baseline the benchmark measures the distributed run against.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Mapping
from typing import Any

from celeryref.errors import InvalidArguments
from celeryref.mapreduce import store
from celeryref.mapreduce.functions import prepare


def run(dataset: str, function: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``function`` over every item of ``dataset`` in one streamed pass."""
    checked = prepare(function, options)
    found = store.get_dataset(dataset)
    with store.partition_items(found.id, 0, found.item_count) as items:
        return checked.run(items)


def parse_options(text: str) -> dict[str, Any]:
    """A JSON object from the command line; ``InvalidArguments`` otherwise."""
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"--options is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise InvalidArguments("--options must be a JSON object")
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celeryref.mapreduce.reference")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--function", required=True)
    parser.add_argument("--options", default="{}", help="JSON object")
    parser.add_argument("--measure", action="store_true", help="add seconds and peak RSS")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        result = run(args.dataset, args.function, parse_options(args.options))
    except InvalidArguments as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if args.measure:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        result = {
            "result": result,
            "seconds": time.perf_counter() - started,
            "peak_rss_mib": peak_kib / 1024,
        }
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
