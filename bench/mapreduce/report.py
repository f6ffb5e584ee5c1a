"""The benchmark's outputs: ``mapreduce.json`` (every number), ``mapreduce.md``
(the table, the command, how it was measured) and ``mapreduce.png`` (a plot;
needs matplotlib, a host tool, not in the image)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COLUMNS = (
    ("approach", "approach"),
    ("worker-cpu containers", "containers"),
    ("pool processes", "processes"),
    ("seconds", "seconds"),
    ("items/s", "items_per_s"),
    ("vs reference", "speedup"),
    ("peak MiB per worker container", "worker_container_peak_mib"),
    ("peak MiB per pool process", "process_peak_mib"),
    ("idle MiB per pool process", "idle_process_mib"),
    ("result backend bytes", "result_backend_bytes"),
    ("exact", "exact"),
)

HOW = """\
## How it was measured

* **seconds**: map-reduce: from the job row's insert to the reducer's commit
  (`mapreduce_jobs.finished_at - created_at`, one Postgres clock); reference: the
  pass over all items inside its process; naive: from dispatch to the reducer's
  result arriving at the client.
* **items/s** = items / seconds; **vs reference** = items/s over the reference's.
* **peak MiB per worker container**: the largest cgroup memory peak of the
  `worker-cpu` containers (`memory.peak`, cgroup v1 `memory.max_usage_in_bytes`):
  every process of the container at its worst moment, including pool processes
  recycled meanwhile. **peak MiB per pool process**: the largest `VmHWM` (peak
  RSS) of a pool process there, the processes that run the tasks, read every 2 s
  during the run and once after it (for the reference: its own `ru_maxrss`);
  **idle** is the same figure just before the run, on the freshly restarted
  workers. Worker
  containers are restarted before each run, so the peaks belong to that run.
* **result backend bytes**: bytes of task results written to Redis during the run.
* **best of**: `--repeat N` runs the reference and each map-reduce row N times
  and reports the fastest (all samples are in `mapreduce.json`); naive runs once.
  The machine is shared, so the load average is recorded with the numbers.
* **exact**: the result is equal (`==`, every count and every float) to the reference.
* Each `worker-cpu` container runs a prefork pool of one process per core; this
  machine shares its cores between Postgres, Redis and every worker, so a second
  container adds processes, not cores.
"""


def _git_commit() -> str | None:
    try:
        run = subprocess.run(
            ["git", "describe", "--always", "--dirty"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return run.stdout.strip() or None


@dataclass
class Report:
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, args: argparse.Namespace, argv: list[str], dataset: str) -> Report:
        return cls(
            {
                "command": "python -m bench.mapreduce.run " + shlex.join(argv[1:]),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": _git_commit(),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg(),
                },
                "dataset": dataset,
                "items": args.items,
                "seed": args.seed,
                "function": args.function,
                "options": json.loads(args.options),
                "partition_size": args.partition_size,
                "partitions": -(-args.items // args.partition_size),
                "runs": [],
            }
        )

    def add_run(
        self,
        approach: str,
        containers: int,
        processes: int,
        seconds: float,
        memory: dict[str, Any],
        result_backend_bytes: int,
        exact: bool,
        samples: list[float],
    ) -> None:
        runs = self.data["runs"]
        items_per_s = self.data["items"] / seconds if seconds else 0.0
        reference = runs[0]["items_per_s"] if runs else items_per_s
        runs.append(
            {
                "approach": approach,
                "containers": containers,
                "processes": processes,
                "seconds": round(seconds, 2),
                "items_per_s": round(items_per_s),
                "speedup": round(items_per_s / reference, 2) if reference else None,
                "worker_container_peak_mib": memory.get("worker_container_peak_mib"),
                "process_peak_mib": memory.get("process_peak_mib"),
                "result_backend_bytes": result_backend_bytes,
                "exact": exact,
                "samples_seconds": samples,
                "idle_process_mib": memory.get("idle_process_mib"),
                "workers": memory.get("workers", []),
            }
        )

    def table(self) -> str:
        def cell(value: Any) -> str:
            if value is None:
                return "-"
            if isinstance(value, bool):
                return "yes" if value else "**NO**"
            return f"{value:,}" if isinstance(value, int) else str(value)

        lines = [
            "| " + " | ".join(title for title, _ in COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        for run in self.data["runs"]:
            lines.append("| " + " | ".join(cell(run[key]) for _, key in COLUMNS) + " |")
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> str:
        """Write json, md and png into ``out``; return the table."""
        out.mkdir(parents=True, exist_ok=True)
        self.data["machine"]["load_average_at_end"] = os.getloadavg()
        (out / "mapreduce.json").write_text(json.dumps(self.data, indent=2) + "\n")
        plotted = self.plot(out / "mapreduce.png")
        d = self.data
        md = [
            "# Map-reduce benchmark\n",
            f"`{d['command']}` on {d['date']} (commit {d['git_commit']}, "
            f"{d['machine']['cpus']} CPUs, 1/5/15-min load average "
            f"{' '.join(f'{x:.1f}' for x in d['machine']['load_average_at_start'])} at the start, "
            f"{' '.join(f'{x:.1f}' for x in d['machine']['load_average_at_end'])} at the end): "
            f"{d['items']:,} items, function `{d['function']}` "
            f"with `{json.dumps(d['options'])}`, {d['partitions']} partitions of "
            f"{d['partition_size']:,}. Dataset generation: {json.dumps(d.get('generate'))}.\n",
            self.table(),
            "![items/s and peak memory](mapreduce.png)\n" if plotted else "",
            HOW,
        ]
        (out / "mapreduce.md").write_text("\n".join(part for part in md if part))
        return self.table()

    def plot(self, path: Path) -> bool:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return False
        runs = self.data["runs"]
        labels = [r["approach"].replace(" (", "\n(") for r in runs]
        fig, (speed, memory) = plt.subplots(1, 2, figsize=(12, 4.5))
        speed.bar(labels, [r["items_per_s"] for r in runs], color="#4472c4")
        speed.set_title(f"items/s ({self.data['items']:,} items, higher is better)")
        memory.bar(labels, [r["process_peak_mib"] or 0 for r in runs], color="#ed7d31")
        memory.set_title("peak MiB per (pool) process (lower is better)")
        for axis in (speed, memory):
            axis.tick_params(axis="x", labelsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return True
