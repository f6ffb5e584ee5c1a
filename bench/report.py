"""The benchmark's outputs: a printed table, ``docs/BENCHMARKS.md``,
``docs/benchmarks/bench.json`` (every number) and ``docs/benchmarks/bench-*.png``
(plots; matplotlib is a host tool, not in the image)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.recommend import HOW, recommendations
from bench.targets import targets

TITLES = {
    "noop": "1. No-op drain (no results)",
    "roundtrip": "2. Round trip: serial `delay().get()`, then fixed arrival rates (sent -> ran)",
    "isolation": "3. Isolation: priority ping latency (sent -> ran) under a CPU backlog",
    "hol": "4. Head-of-line mix: short-task waits and idle workers (baseline worker variants)",
    "fanout": "5. Fan-out/fan-in: chord vs chunks (time from send to body start)",
    "chordmax": "5b. The largest chord within the limit (deployment; headers doubled)",
    "scaling": "6. Scaling: deployment with 1, 2, 3 worker containers",
    "cpu": "6b. CPU tasks against one plain process per core, plain Celery beside the deployment",
    "costs": "7. Short tasks with results, end to end, and their cost per task (issue 15)",
    "profiles": "8. Short-task worker profiles: a backlog of tasks with results drained",
}


def machine(images: Sequence[str]) -> dict[str, Any]:
    """Cores, memory, load average and the image ids of this run."""
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "images": {image: _image_id(image) for image in images},
    }


def _image_id(image: str) -> str | None:
    run = subprocess.run(  # noqa: S603 - fixed program
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return run.stdout.strip()[:19] or None


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of ``rows`` with the union of their keys as columns."""
    if not rows:
        return "(no rows)\n"
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return (
            f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        )

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def start(command: str, sizes: dict[str, Any], images: Sequence[str]) -> dict[str, Any]:
    """The report's header data, taken before the first workload runs."""
    return {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": machine(images),
        "sizes": sizes,
        "results": {},
    }


def _git_commit() -> str | None:
    run = subprocess.run(
        ["git", "describe", "--always", "--dirty"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return run.stdout.strip() or None


def render(data: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """``docs/BENCHMARKS.md`` for ``data``; ``plots`` are file names under ``benchmarks/``."""
    m = data["machine"]
    before = " ".join(str(x) for x in m["load_average_before"])
    after = " ".join(str(x) for x in m.get("load_average_after", []))
    images = ", ".join(f"`{k}` ({v})" for k, v in m["images"].items())
    out = [
        "# Benchmarks: the deployment against plain Celery defaults\n",
        f"Command: `{data['command']}`, {data['date']}, commit {data['git_commit']}.\n",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB memory; 1/5/15-min load "
        f"average {before} before, {after} after (the machine may be shared: compare "
        f"ratios within one run, not absolute numbers across runs). Images: {images}.\n",
        "Sizes: "
        + ", ".join(f"{k} {v}" for k, v in data.get("sizes", {}).items())
        + " (`--quick` shrinks them; the issue's targets are stated for the defaults).\n",
        "## Targets\n",
        table(targets(data["results"])),
    ]
    for name, rows in data["results"].items():
        out += [f"## {TITLES.get(name, name)}\n", table(rows)]
        if f"bench-{name}.png" in plots:
            out.append(f"![{name}](benchmarks/bench-{name}.png)\n")
    out += ["## Recommendations\n", recommendations(data["results"]), HOW]
    return "\n".join(out)


def write(data: dict[str, Any], docs: Path) -> str:
    """Write json, png and md under ``docs``; return the printed text (tables)."""
    data["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    out = docs / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    plots = plot(data["results"], out)
    (docs / "BENCHMARKS.md").write_text(render(data, plots))
    printed = ["Targets", table(targets(data["results"]))]
    for name, rows in data["results"].items():
        printed += [TITLES.get(name, name), table(rows)]
    return "\n".join(printed)


def plot(results: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
    """One bar chart per workload; the file names written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    #: workload -> (label keys, value key, title, log scale)
    specs = {
        "noop": (("side",), "drain_per_s", "no-op drained/s (higher is better)", False),
        "roundtrip": (("side", "load"), "p99_ms", "p99 latency, ms (lower is better)", True),
        "isolation": (("side",), "p99_ms", "priority p99, ms, log (lower is better)", True),
        "hol": (
            ("variant",),
            "short_p99_wait_ms",
            "short-task p99 wait, ms (lower is better)",
            False,
        ),
        "fanout": (("headers", "side", "kind"), "per_task_ms", "ms per header task", False),
        "scaling": (("containers",), "noop_drain_per_s", "no-op drain/s by containers", False),
        "cpu": (("cpu_ms", "side"), "vs_single_processes", "CPU tasks/s vs the limit", False),
        "costs": (("side", "service"), "tasks_per_s", "short tasks with results/s", False),
        "profiles": (("profile",), "tasks_per_s", "backlog with results drained/s", False),
    }
    written = []
    for name, rows in results.items():
        if name not in specs or not rows:
            continue
        keys, value, title, log = specs[name]
        labels = ["\n".join(f"{k}={r.get(k)}" for k in keys) for r in rows]
        values = [float(r.get(value) or 0) for r in rows]
        fig, axis = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4.5))
        axis.bar(labels, values, color="#4472c4")
        axis.set_title(title)
        if log and all(v > 0 for v in values):
            axis.set_yscale("log")
        axis.tick_params(axis="x", labelsize=7)
        fig.tight_layout()
        fig.savefig(out / f"bench-{name}.png", dpi=90)
        plt.close(fig)
        written.append(f"bench-{name}.png")
    return written
