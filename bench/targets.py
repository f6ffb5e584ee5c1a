"""Targets of issues 8 and 15 checked against one run's results (the "Targets" table of
``docs/BENCHMARKS.md``): each row the measured ratio and whether it was met."""

from __future__ import annotations

from typing import Any

from bench.sides import GUARDED_LABEL

Results = dict[str, list[dict[str, Any]]]


def _row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(str(row.get(k, "")).startswith(str(v)) for k, v in match.items()):
            return row
    return None


def targets(results: Results) -> list[dict[str, Any]]:
    """One row per target: the measured ratio and whether it was met."""
    out: list[dict[str, Any]] = []
    iso = results.get("isolation", [])
    dep, base = _row(iso, side="deployment"), _row(iso, side="baseline")
    if dep and base and dep.get("p99_ms"):
        ratio = base["p99_ms"] / dep["p99_ms"]
        out.append(
            {"target": "priority p99 under CPU backlog >= 100x lower than baseline",
             "measured": f"{ratio:.0f}x ({dep['p99_ms']} ms vs {base['p99_ms']} ms)",
             "met": ratio >= 100}
        )  # fmt: skip
    noop = results.get("noop", [])
    base = _row(noop, side="baseline")
    for row in noop:
        if base and row is not base:
            ratio = row["drain_per_s"] / base["drain_per_s"]
            out.append(
                {"target": f"no-op drain >= 2x baseline: {row['side']} (acks_late on)",
                 "measured": f"{ratio:.2f}x ({row['drain_per_s']}/s vs {base['drain_per_s']}/s)",
                 "met": ratio >= 2}
            )  # fmt: skip
    for size, choice in cheaper_fanout(results).items():
        out.append(
            {"target": f"chord/chunks overhead per task reported ({size} headers)",
             "measured": choice, "met": True}
        )  # fmt: skip
    return out + speed_targets(results)


def _ratio(target: str, value: float, other: float, unit: str, floor: float) -> dict[str, Any]:
    ratio = value / other if other else 0.0
    return {"target": target, "measured": f"{ratio:.2f}x ({value:g}{unit} vs {other:g}{unit})",
            "met": ratio >= floor}  # fmt: skip


def speed_targets(results: Results) -> list[dict[str, Any]]:
    """Issue 15's targets: ratios against plain Celery defaults within this run."""
    out: list[dict[str, Any]] = []
    costs = results.get("costs", [])
    dep, base = _row(costs, service="worker"), _row(costs, side="baseline")
    if dep and base:
        row = _ratio("short tasks with results, end to end >= 1.0x plain (as shipped)",
                     dep["tasks_per_s"], base["tasks_per_s"], "/s", 1.0)  # fmt: skip
        if dep.get("vs_baseline_rounds"):
            row["measured"] += f"; rounds {dep['vs_baseline_rounds']}x"
        guarded = _row(costs, side=GUARDED_LABEL)
        if guarded:  # the spec's guarantees alone, on plain Celery
            row["measured"] += f"; plain Celery with the guarantees {guarded['vs_baseline']:.2f}x"
        out.append(row)
    chords = [r for r in results.get("fanout", []) if r["kind"] == "chord" and r["headers"] == 1000]
    dep, base = _row(chords, side="deployment"), _row(chords, side="baseline")
    if dep and base:
        out.append(_ratio("chord of 1,000 to its body >= 1.0x plain (time ratio plain/ours)",
                          base["body_start_s"], dep["body_start_s"], " s", 1.0))  # fmt: skip
    trips = results.get("roundtrip", [])
    dep, base = _row(trips, side="deployment", load="serial"), _row(trips, side="baseline")
    if dep and base:
        extra = dep["p50_ms"] - base["p50_ms"]
        out.append({"target": "delay().get() p50 <= plain + 1 ms",
                    "measured": f"+{extra:.2f} ms ({dep['p50_ms']} vs {base['p50_ms']} ms)",
                    "met": extra <= 1.0})  # fmt: skip
    profiles = results.get("profiles", [])
    base = _row(profiles, profile="baseline")
    best = max((r for r in profiles if r is not base), key=lambda r: r["vs_baseline"], default=None)
    if best and base:
        # Against the baseline drained right before it (bench.workloads.profiles).
        out.append(_ratio(f"short-task profile >= 2.0x plain ({best['profile']})",
                          best["tasks_per_s"], best.get("baseline_per_s") or base["tasks_per_s"],
                          "/s", 2.0))  # fmt: skip
        cheapest = min((r for r in profiles if r is not base and r.get("cpu_us_total")),
                       key=lambda r: r["cpu_us_total"], default=None)  # fmt: skip
        if cheapest and cheapest.get("cpu_bound_per_s"):
            bound = cheapest["cpu_bound_per_s"]
            out.append({
                "target": "2.0x reachable within 2 cores' CPU (cheapest profile's CPU per task)",
                "measured": f"{cheapest['profile']}: {cheapest['cpu_us_total']} us/task (worker "
                            f"{cheapest['cpu_us_worker']}, Redis {cheapest['cpu_us_redis']}, "
                            f"client {cheapest['cpu_us_client']}) -> at most {bound}/s = "
                            f"{bound / base['tasks_per_s']:.2f}x plain",
                "met": bound >= 2 * base["tasks_per_s"],
            })  # fmt: skip
    limit = results.get("chordmax", [])
    fits = [r for r in limit if r["within_limit"]]
    if limit:
        largest = max(fits, key=lambda r: r["headers"]) if fits else None
        out.append({"target": "largest chord to its body within the limit reported",
                    "measured": (f"{largest['headers']:,} headers in {largest['body_start_s']} s, "
                                 f"Redis +{largest['redis_peak_mib']} MiB at peak; "
                                 f"{limit[-1]['headers']:,} took {limit[-1]['body_start_s']} s")
                                if largest else f"none: {limit[0]['headers']:,} took "
                                f"{limit[0]['body_start_s']} s",
                    "met": largest is not None})  # fmt: skip
    out += cpu_targets(results)
    return out


def cpu_targets(results: Results) -> list[dict[str, Any]]:
    """The CPU target per task length (section 6b), plain Celery's ratio beside it;
    without section 6b, from the scaling rows' single container."""
    out: list[dict[str, Any]] = []
    rows = results.get("cpu", [])
    for dep in (r for r in rows if r["side"] == "deployment"):
        base = _row(rows, side="baseline", cpu_ms=dep["cpu_ms"])
        plain = f"; plain Celery {base['vs_single_processes']}x" if base else ""
        out.append({"target": f"CPU tasks on worker-cpu >= 0.9x N single processes "
                              f"(N = cores), {dep['cpu_ms']:g} ms tasks",
                    "measured": f"{dep['vs_single_processes']}x ({dep['tasks_per_s']}/s vs "
                                f"{dep['single_processes_per_s']}/s){plain}",
                    "met": dep["vs_single_processes"] >= 0.9})  # fmt: skip
    one = _row(results.get("scaling", []), containers=1)
    if not rows and one and one.get("cpu_physical_limit_per_s"):
        limit = one.get("cpu_single_processes_per_s") or one["cpu_physical_limit_per_s"]
        out.append(_ratio("CPU tasks on worker-cpu >= 0.9x N single processes (N = cores)",
                          one["cpu_tasks_per_s"], limit, "/s", 0.9))  # fmt: skip
    return out


def cheaper_fanout(results: Results) -> dict[int, str]:
    """Headers -> which of chord and chunks reached the body sooner on the deployment."""
    by_size: dict[int, list[dict[str, Any]]] = {}
    for row in results.get("fanout", []):
        if row["side"] == "deployment":
            by_size.setdefault(row["headers"], []).append(row)
    return {
        size: "cheaper: {kind} ({per_task_ms} ms/task vs {other} ms/task)".format(
            **min(rows, key=lambda r: r["per_task_ms"]),
            other=max(rows, key=lambda r: r["per_task_ms"])["per_task_ms"],
        )
        for size, rows in by_size.items()
        if len(rows) == 2
    }
