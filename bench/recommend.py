"""The recommendations derived from one run's results, and the findings and method
rendered into ``docs/BENCHMARKS.md`` (the targets: :mod:`bench.targets`)."""

from __future__ import annotations

from bench.targets import Results, _row, cheaper_fanout


def recommendations(results: Results) -> str:
    """Which setting buys what, from this run's numbers (Markdown bullets)."""
    lines = []
    iso = results.get("isolation", [])
    dep, base = _row(iso, side="deployment"), _row(iso, side="baseline")
    if dep and base:
        lines.append(
            f"* **Dedicated `priority` queue and worker** (keep): priority p99 "
            f"{dep['p99_ms']} ms under {dep['cpu_tasks']} queued CPU tasks, against "
            f"{base['p99_ms']} ms when they share one default worker. Isolation comes "
            "from the separate queue and worker, not from message priorities."
        )
    noop = results.get("noop", [])
    base_n, dep_n = _row(noop, side="baseline"), _row(noop, side="deployment")
    tuned = _row(noop, side="deployment, tuned")
    late = _row(noop, side="baseline + acks_late")
    if base_n and dep_n:
        text = (
            f"* **Short tasks on `default`**: the deployment drains {dep_n['drain_per_s']}/s "
            f"against the baseline's {base_n['drain_per_s']}/s; per task it pays for the "
            "delivery guard (one round trip), batched task events and acks_late with "
            "prefetch 1 (docs/PERFORMANCE.md)."
        )
        if late:
            verdict = (
                "it is not what makes the deployment slower"
                if late["vs_baseline"] >= 0.9
                else "one more Redis round trip per task, after it ran"
            )
            text += (
                f" `task_acks_late` alone takes the baseline from "
                f"{base_n['drain_per_s']}/s to {late['drain_per_s']}/s "
                f"({late['vs_baseline']}x): {verdict}."
            )
        if tuned:
            text += (
                f" A threads pool with prefetch 8 (acks_late kept) drains "
                f"{tuned['drain_per_s']}/s ({tuned['vs_baseline']}x baseline): for a queue of "
                "short I/O-light tasks use `--pool threads --concurrency 8 "
                "--prefetch-multiplier 8` on the `worker` service."
            )
        lines.append(text)
    hol = results.get("hol", [])
    if hol:
        best = min(hol, key=lambda r: r["short_p99_wait_ms"] or 0)
        worst = max(hol, key=lambda r: r["short_p99_wait_ms"] or 0)
        lines.append(
            f"* **Mixed long and short tasks**: short-task p99 wait is lowest with "
            f"*{best['variant']}* ({best['short_p99_wait_ms']} ms, idle "
            f"{best['idle_fraction']}) and highest with *{worst['variant']}* "
            f"({worst['short_p99_wait_ms']} ms, idle {worst['idle_fraction']})."
        )
        nopre = _row(hol, variant="no-prefetch")
        one = _row(hol, variant="prefetch 1")
        if nopre and one:
            better = nopre["short_p99_wait_ms"] < one["short_p99_wait_ms"]
            lines[-1] += (
                f" `worker_disable_prefetch=True` (Celery 5.5+, Redis only): "
                f"{nopre['short_p99_wait_ms']} ms vs {one['short_p99_wait_ms']} ms with "
                "prefetch 1 + acks_late; "
                + (
                    "adopt it on queues that mix durations."
                    if better
                    else "no gain here: keep `worker_prefetch_multiplier=1` + `task_acks_late`."
                )
            )
    for size, choice in cheaper_fanout(results).items():
        lines.append(f"* **Fan-out of {size:,}**: {choice}.")
    scaling = results.get("scaling", [])
    if len(scaling) > 1:
        first, last = scaling[0], scaling[-1]
        lines.append(
            f"* **Scaling on this machine**: {first['containers']} -> {last['containers']} "
            f"containers: no-op drain {first['noop_drain_per_s']} -> "
            f"{last['noop_drain_per_s']}/s, CPU {first['cpu_tasks_per_s']} -> "
            f"{last['cpu_tasks_per_s']} tasks/s. Containers add processes, not cores: "
            "scale out past the core count only across machines."
        )
    lines.append(FINDINGS)
    return "\n".join(lines) + "\n"


#: Found while building the benchmark; true whatever the numbers of a run.
FINDINGS = """\
* **CPU share of `worker-cpu`**: on a machine whose cores the CPU backlog
  saturates, the priority worker's latency is set by the kernel scheduler, not by
  Celery. Give `worker-cpu` a lower `cpu_shares` (or `cpus:` below the core count)
  than `worker-priority` in `docker-compose.yml` so urgent work keeps a core.
* **`send_task` ignored `task_default_priority`** (fixed): Celery applies it in
  `Task.apply_async` only (`celery/app/task.py`); a message sent by name without
  `priority` landed in the top Redis step (0), so API/CLI submissions and replays
  overtook normal work. `celeryref.celery_app.App.send_task` now applies the
  default (`tests/integration/test_broker_behaviour.py`,
  `test_a_task_sent_by_name_gets_the_default_priority_not_the_top_one`).
* **One Redis database per kombu separator**: the deployment sets the transport
  option `sep=":"`; any app on the same broker database with kombu's default
  separator breaks every remote-control broadcast (`ValueError: not enough
  values to unpack`, all `inspect ping` healthchecks fail). The baseline therefore
  uses databases 4/5; document it for anyone sharing the broker database.
"""


HOW = """\
## How it was measured

* **Stack**: `docker-compose.yml` + `docker/bench/compose.bench.yml` as compose
  project `celeryref-bench`, host ports offset by 30000; built, brought up healthy,
  and removed at the end (`KEEP_BENCH=1` keeps it).
* **Baseline**: `worker-baseline` runs `bench/baseline.py`: the same task
  functions under the same names on a Celery app with plain defaults (prefork,
  concurrency = cores, prefetch 4, acks early, results on, no events) consuming
  the queue `celery` on the same Redis server (databases 4/5, see Findings
  below). The deployment runs them through its
  `BaseTask` on its own queues and workers.
* **Timestamps** are taken inside the tasks (`time.time()`, one host clock); a
  wait is task start minus the moment this process sent it (or resumed the
  consumers, for pre-loaded queues).
* **Drain**: the consumers are paused (`cancel_consumer`), N messages published,
  consumers resumed (`add_consumer`); drained = no message left in the queue's
  Redis lists and none unacknowledged.
* **Capacity** (round trip): a pre-loaded burst of result-bearing tasks, tasks /
  (last start - consumers resumed); the fixed-rate levels send at 50% and 80% of
  it (`sent_per_s` is the rate the client achieved).
* **Head-of-line**: long tasks 1% 10 s, 29% 5 s, 20% 3 s, 50% 1 s times the scale
  in `bench.json` (`hol_scale`), mixed with as many 10 ms tasks, shuffled,
  pre-loaded; idle fraction = 1 - busy time / (processes x makespan).
* **Fan-out**: chord of N `stamp` headers vs `chunks` of 100 in a chord; body start
  is the body task's own timestamp; Redis peak is `used_memory` sampled every
  50 ms minus its value before. The client waits on the body's id alone
  (`chord(...)().get()` would GET every header's result on each wait interval).
* **Turns**: the machine's load drifts within minutes, so the sides take turns:
  serial round trips alternate call by call, chords run 3 alternating rounds
  (median shown), the cost breakdown runs `cost_rounds` rounds in rotated order,
  each worker profile drains right after a baseline drain, the no-op drain
  of the deployment and the baseline runs 3 alternating rounds, and the CPU
  tasks of section 6b `cpu_rounds` alternating rounds per task length. The
  no-op variants and the scaling rows are single passes.
* **CPU per task**: worker processes from `/proc/<pid>/stat`, a whole container
  from its cgroup, Redis from `INFO cpu`, this client from its `process_time`;
  the CPU-task limit is one plain process per core running `burn_cpu` in the
  idle `worker-cpu` container (`bench/single.py`).
"""
