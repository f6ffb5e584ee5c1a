"""The benchmark report: tables, targets and the rendered Markdown."""

from __future__ import annotations

from typing import Any

from bench import report, sides, targets

RESULTS: dict[str, list[dict[str, Any]]] = {
    "noop": [
        {"side": "deployment", "drain_per_s": 300, "vs_baseline": 0.5},
        {"side": "baseline", "drain_per_s": 600, "vs_baseline": 1.0},
        {"side": "deployment, tuned worker", "drain_per_s": 1500, "vs_baseline": 2.5},
    ],
    "isolation": [
        {"side": "deployment", "cpu_tasks": 2000, "p99_ms": 20.0},
        {"side": "baseline", "cpu_tasks": 2000, "p99_ms": 40000.0},
    ],
    "fanout": [
        {"headers": 1000, "side": "deployment", "kind": "chord", "per_task_ms": 3.0},
        {"headers": 1000, "side": "deployment", "kind": "chunks of 100", "per_task_ms": 0.3},
    ],
}


def test_table_uses_the_union_of_keys() -> None:
    """Missing cells print as '-', integers get thousands separators."""
    text = report.table([{"a": 1000, "b": "x"}, {"a": 2, "c": None}])
    lines = text.splitlines()
    assert lines[0] == "| a | b | c |"
    assert lines[2] == "| 1,000 | x | - |"
    assert lines[3] == "| 2 | - | - |"
    assert report.table([]) == "(no rows)\n"


def test_targets_are_ratios_of_one_run() -> None:
    rows = {r["target"]: r for r in targets.targets(RESULTS)}
    priority = next(r for t, r in rows.items() if t.startswith("priority p99"))
    assert priority["met"] is True
    assert priority["measured"].startswith("2000x")
    drains = [r for t, r in rows.items() if t.startswith("no-op drain")]
    assert [r["met"] for r in drains] == [False, True]
    assert "chunks of 100" in targets.cheaper_fanout(RESULTS)[1000]


def test_render_has_machine_targets_and_recommendations() -> None:
    data = {
        "command": "python -m bench --quick",
        "date": "2026-01-01T00:00:00+00:00",
        "git_commit": "abc",
        "machine": {
            "cores": 2,
            "memory_gib": 23.5,
            "load_average_before": [1.0, 2.0, 3.0],
            "load_average_after": [1.5, 2.0, 3.0],
            "images": {"celeryref/app:bench": "sha256:1"},
        },
        "results": RESULTS,
    }
    md = report.render(data, plots=["bench-noop.png"])
    assert "2 cores, 23.5 GiB" in md
    assert "1.0 2.0 3.0 before, 1.5 2.0 3.0 after" in md
    assert "`python -m bench --quick`" in md
    assert "## Targets" in md and "## Recommendations" in md
    assert "![noop](benchmarks/bench-noop.png)" in md
    assert "Dedicated `priority` queue" in md


def test_rounds_merge_into_rates_over_the_summed_time() -> None:
    """Two rounds of 100 tasks at 100/s and 50/s are 200 tasks in 3 s (67/s), not the
    mean of the rates (75/s); per-task costs are weighted by tasks; the per-round
    ratios to the baseline are kept as their spread."""
    from bench.workloads import _merge

    rounds = [
        {"tasks": 100, "tasks_per_s": 100, "cpu_us_pool": 1000, "pool_processes": 2,
         "vs_baseline": 0.9, "redis_by_command": "get 2"},
        {"tasks": 100, "tasks_per_s": 50, "cpu_us_pool": 2000, "pool_processes": 4,
         "vs_baseline": 1.1, "redis_by_command": "get 2"},
    ]  # fmt: skip
    merged = _merge(rounds)
    assert merged["tasks"] == 200 and merged["tasks_per_s"] == 67
    assert merged["cpu_us_pool"] == 1500 and merged["pool_processes"] == 4
    assert merged["vs_baseline_rounds"] == "0.9-1.1"
    drains = [{k: v for k, v in r.items() if k != "pool_processes"} for r in rounds]
    assert "pool_processes" not in _merge(drains)  # the profiles' drains have none


def test_the_chord_limit_is_the_largest_chord_within_it() -> None:
    """The report names the largest chord that reached its body within the limit."""
    rows = [
        {"headers": 2500, "body_start_s": 14.0, "redis_peak_mib": 4.0, "within_limit": True},
        {"headers": 5000, "body_start_s": 29.0, "redis_peak_mib": 8.0, "within_limit": True},
        {"headers": 10000, "body_start_s": 61.0, "redis_peak_mib": 16.0, "within_limit": False},
    ]
    (target,) = [t for t in targets.speed_targets({"chordmax": rows}) if "largest" in t["target"]]
    assert target["met"] and target["measured"].startswith("5,000 headers in 29.0 s")


def test_the_cpu_target_is_checked_per_task_length_with_plain_celery_beside_it() -> None:
    """Section 6b's rows give one target per length; the scaling rows are then not used."""
    cpu = [
        {"cpu_ms": 50.0, "side": "deployment", "tasks_per_s": 30.0,
         "single_processes_per_s": 36.0, "vs_single_processes": 0.83},
        {"cpu_ms": 50.0, "side": "baseline", "tasks_per_s": 30.5,
         "single_processes_per_s": 36.0, "vs_single_processes": 0.85},
        {"cpu_ms": 200.0, "side": "deployment", "tasks_per_s": 8.9,
         "single_processes_per_s": 9.6, "vs_single_processes": 0.93},
        {"cpu_ms": 200.0, "side": "baseline", "tasks_per_s": 8.8,
         "single_processes_per_s": 9.6, "vs_single_processes": 0.92},
    ]  # fmt: skip
    scaling = [{"containers": 1, "cpu_tasks_per_s": 1.0, "cpu_physical_limit_per_s": 40.0}]
    rows = targets.targets({"cpu": cpu, "scaling": scaling})
    found = [(r["target"].rsplit(", ", 1)[-1], r["met"], r["measured"]) for r in rows]
    assert found == [
        ("50 ms tasks", False, "0.83x (30.0/s vs 36.0/s); plain Celery 0.85x"),
        ("200 ms tasks", True, "0.93x (8.9/s vs 9.6/s); plain Celery 0.92x"),
    ]
    only_scaling = targets.targets({"scaling": scaling})
    assert [r["met"] for r in only_scaling] == [False]


def test_the_short_task_target_is_against_the_defaults_with_the_guarded_ratio_beside() -> None:
    """Section 7's guarded row (listed before the baseline) is shown beside the ratio,
    never taken for the baseline it is measured against."""
    costs = [
        {"side": "deployment", "service": "worker", "tasks_per_s": 90.0, "vs_baseline": 0.9},
        {"side": sides.GUARDED_LABEL, "service": "worker-baseline-guarded",
         "tasks_per_s": 80.0, "vs_baseline": 0.8},
        {"side": "baseline", "service": "worker-baseline", "tasks_per_s": 100.0,
         "vs_baseline": 1.0},
    ]  # fmt: skip
    (target,) = [t for t in targets.speed_targets({"costs": costs}) if "end to end" in t["target"]]
    assert target["measured"] == ("0.90x (90/s vs 100/s); plain Celery with the guarantees 0.80x")
    assert not target["met"]
