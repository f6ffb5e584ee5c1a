"""The deployment on Docker Swarm (``compose.swarm.yml``): it converges, the demo client
runs, ``worker-cpu`` scales to 3, and a rolling update of every worker service while
LOAD_TASKS drills are in flight loses none and runs none twice (counted in Postgres).

Steps are module fixtures, each used by the tests that check it: deploy (``swarm``) ->
demo -> scale -> rolling update. Measurements go to ``build/swarm-measurements.json``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field

import pytest
import requests

from celeryref import queues
from tests.conftest import wait_for
from tests.swarm.conftest import (
    IMAGE,
    LONG_RUNNING,
    SOFT_SHUTDOWN_SECONDS,
    STACK,
    SWARM_ENV,
    WORKERS,
    Swarm,
    docker,
)
from tests.swarm.probes import REACH, SEND, counts, record

#: Drills sent right before the rolling update, spread evenly over the five queues.
LOAD_TASKS = 2000
#: Seconds each queue's share keeps its workers busy at their usual concurrency: longer
#: than the update (about 80 s: worker-cpu's three tasks one after the other).
LOAD_SECONDS = 70
#: Concurrency per queue: autoscale 4,2 (about 3), 3 replicas x one process per core,
#: 32 threads, 2, 2.
SLOTS = {
    queues.DEFAULT: 3,
    queues.CPU_INTENSIVE: 3 * (os.cpu_count() or 2),
    queues.IO_INTENSIVE: 32,
    queues.PRIORITY: 2,
    queues.SCHEDULED: 2,
}
#: Seconds a drill of the long kind holds: past the soft-shutdown window, so the cold
#: shutdown cancels it and requeues its message. On single-replica prefork services, whose
#: only task the update stops within seconds (worker-io's threads cannot be cancelled).
LONG_HOLD = SOFT_SHUTDOWN_SECONDS + 15
LONG_QUEUES = (queues.DEFAULT, queues.PRIORITY, queues.SCHEDULED)
#: Terminal states of a service update.
SETTLED = {"completed", "paused", "rollback_completed", "rollback_paused"}
#: The tmpfs every read-only task writes to.
TMP = "/tmp"  # noqa: S108 - a path inside the containers


def hold(queue: str) -> float:
    """Seconds per drill so the queue's share lasts LOAD_SECONDS, and ends well inside the
    soft-shutdown window (a stopped worker finishes it)."""
    per_queue = LOAD_TASKS / len(SLOTS)
    return round(min(LOAD_SECONDS * SLOTS[queue] / per_queue, SOFT_SHUTDOWN_SECONDS - 3), 2)


def test_every_service_converges_hardened_and_limited(swarm: Swarm) -> None:
    """Each service at its replica count, healthy, the migrate job completed; every task
    read-only with a /tmp tmpfs, CPU/memory/pids limits, no capability, no secret in its
    environment; the API answers on its host-mode port."""
    replicas = swarm.replicas()
    assert replicas["migrate"] == "0/1 (1/1 completed)"
    assert {replicas[s] for s in LONG_RUNNING} == {"1/1"}, replicas
    # The mail sink is the test's development service, not part of the profile.
    hardened = [c for s in LONG_RUNNING if s != "mailsink" for c in swarm.containers(s)]
    for container in hardened:
        info = swarm.inspect(container)
        host, name = info["HostConfig"], info["Name"]
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"], name
        assert host["Memory"] > 0 and host["NanoCpus"] > 0 and host["PidsLimit"] > 0, name
        tmpfs = {m["Target"] for m in host.get("Mounts", []) if m["Type"] == "tmpfs"}
        assert TMP in tmpfs, name
        env = {v.partition("=")[0] for v in info["Config"]["Env"]}
        assert not {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN"} & env, name
    record("deploy_to_converged_seconds", swarm.startup_seconds)
    health = requests.get(f"http://127.0.0.1:{SWARM_ENV['APP_HOST_PORT']}/healthz", timeout=10)
    assert health.status_code == 200


def test_a_one_off_container_on_the_overlay_reaches_each_task_by_name(swarm: Swarm) -> None:
    """dnsrr: a service name resolves to its task's own address (no virtual IP), and a
    container attached to the overlay from outside the stack connects to it."""
    network = f"{STACK}_default"
    out = docker("run", "--rm", "--network", network, IMAGE, "python", "-c", REACH)
    for service, addresses in json.loads(out).items():
        (task,) = swarm.containers(service)
        ip = swarm.inspect(task)["NetworkSettings"]["Networks"][network]["IPAddress"]
        assert addresses == [ip], (service, addresses, ip)


@pytest.fixture(scope="module")
def demo(swarm: Swarm) -> str:
    """The demo client run in the app's task (the Swarm ``make demo``)."""
    started = time.monotonic()
    out = swarm.python("-m", "celeryref.client", "demo")
    record("demo_seconds", time.monotonic() - started)
    return out


def test_the_demo_client_gets_every_result_back(demo: str) -> None:
    assert "7 succeeded, 0 failed" in demo, demo
    for queue in queues.ALL_QUEUES:
        assert f" {queue} " in demo, demo
    assert ", 0 wrong" in demo, demo


@pytest.fixture(scope="module")
def scaled(swarm: Swarm) -> list[str]:
    """``docker service scale worker-cpu=3``; the three containers once converged."""
    started = time.monotonic()
    docker("service", "scale", f"{swarm.service('worker-cpu')}=3", timeout=300)
    swarm.wait_converged()
    record("scale_to_3_seconds", time.monotonic() - started)
    return swarm.containers("worker-cpu")


def test_worker_cpu_scales_to_three_healthy_tasks(swarm: Swarm, scaled: list[str]) -> None:
    """Three tasks, each a healthy Celery node (the healthcheck asks it over the broker)."""
    assert len(scaled) == 3
    assert swarm.replicas()["worker-cpu"] == "3/3"
    states = {swarm.inspect(c)["State"]["Health"]["Status"] for c in scaled}
    assert states == {"healthy"}


@dataclass
class RollingUpdate:
    """What ``docker service update --force`` of every worker service under load left."""

    load: list[str]
    long: list[str]
    replaced: dict[str, list[str]]
    successors: dict[str, list[str]] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    pending_at_start: int = 0
    pending_at_end: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    effects: dict[str, int] = field(default_factory=dict)
    busy_at_stop: dict[str, bool] = field(default_factory=dict)


@pytest.fixture(scope="module")
def rolling_update(swarm: Swarm, scaled: list[str]) -> RollingUpdate:
    """Long drills running on LONG_QUEUES, then LOAD_TASKS drills queued, then every worker
    service updated at once (each one task at a time, stop-first); returns once every
    drill has its effect (or after a deadline: the tests then say what is missing)."""
    prefix = f"swarm-{uuid.uuid4().hex[:8]}"
    plan = {q: [LOAD_TASKS // len(SLOTS), hold(q)] for q in SLOTS}
    run = RollingUpdate(
        load=[f"{prefix}-load-{q}-{i}" for q, (n, _) in plan.items() for i in range(n)],
        long=[f"{prefix}-long-{q}-0" for q in LONG_QUEUES],
        replaced={s: swarm.containers(s) for s in WORKERS},
    )
    swarm.python("-c", SEND, f"{prefix}-long", json.dumps({q: [1, LONG_HOLD] for q in LONG_QUEUES}))
    wait_for(lambda: len(counts(swarm, prefix)[0]) == len(LONG_QUEUES), 60, "long drills", every=1)
    assert int(swarm.python("-c", SEND, f"{prefix}-load", json.dumps(plan))) == LOAD_TASKS
    started = time.monotonic()
    run.pending_at_start = len(set(run.load) - counts(swarm, prefix)[1].keys())
    for service in WORKERS:
        docker("service", "update", "--force", "--detach", swarm.service(service))

    def settled() -> dict[str, str] | None:
        states = {s: swarm.update_state(s) for s in WORKERS}
        return states if set(states.values()) <= SETTLED else None

    run.states = wait_for(settled, 420, "every worker service's update to settle", every=2)
    record("update_seconds", time.monotonic() - started)
    run.pending_at_end = len(set(run.load) - counts(swarm, prefix)[1].keys())
    deadline = time.monotonic() + 240  # then count what ran: the tests name what is missing
    while time.monotonic() < deadline:
        run.runs, run.effects = counts(swarm, prefix)
        if run.effects.keys() >= {*run.load, *run.long}:
            break
        time.sleep(2)
    record("update_and_drain_seconds", time.monotonic() - started)
    run.successors = {s: swarm.containers(s) for s in WORKERS}
    for container in [c for cs in run.replaced.values() for c in cs]:
        logs = swarm.run(["docker", "logs", container]).stderr
        run.busy_at_stop[container] = "Initiating Soft Shutdown" in logs
    record("pending_at_update_start_end", [run.pending_at_start, run.pending_at_end])
    load_runs = [run.runs.get(k, 0) for k in run.load]
    record(
        "load_sent_ran_twice",
        [len(run.load), sum(n > 0 for n in load_runs), sum(n > 1 for n in load_runs)],
    )
    record("load_effects", sum(run.effects.get(k, 0) for k in run.load))
    record("long_runs", {k: run.runs.get(k, 0) for k in run.long})
    return run


def test_the_update_replaced_every_worker_task_while_it_ran_tasks(
    rolling_update: RollingUpdate,
) -> None:
    """Every update completed (no rollback); each worker service has new containers only;
    each replaced one logged Celery's soft shutdown, which it starts only with tasks
    running: every stop happened under load."""
    run = rolling_update
    assert run.states == dict.fromkeys(WORKERS, "completed")
    for service, old in run.replaced.items():
        assert len(run.successors[service]) == len(old), service
        assert not set(run.successors[service]) & set(old), service
    assert run.busy_at_stop and all(run.busy_at_stop.values()), run.busy_at_stop


def test_the_load_was_in_flight_for_the_whole_update(rolling_update: RollingUpdate) -> None:
    run = rolling_update
    assert run.pending_at_start >= 0.9 * LOAD_TASKS, run.pending_at_start
    assert run.pending_at_end > 0, "the load drained before the update ended: lengthen it"


def test_no_task_was_lost_or_ran_twice_across_the_rolling_update(
    rolling_update: RollingUpdate,
) -> None:
    """Each of the LOAD_TASKS drills ran exactly once and left exactly one effect."""
    run = rolling_update
    lost = [k for k in run.load if k not in run.effects]
    assert not lost, f"{len(lost)} of {LOAD_TASKS} never completed: {lost[:5]}"
    twice = {
        k: (run.runs[k], run.effects[k])
        for k in run.load
        if (run.runs[k], run.effects[k]) != (1, 1)
    }
    assert not twice, f"{len(twice)} ran or took effect more than once: {list(twice.items())[:5]}"


def test_tasks_outlasting_the_soft_shutdown_were_requeued_and_took_effect_once(
    rolling_update: RollingUpdate,
) -> None:
    """A drill still running when the window ended was cancelled, its message requeued at
    once (not stranded until the visibility timeout) and run again by the successor: two
    runs, one effect."""
    run = rolling_update
    assert {k: (run.runs.get(k, 0) >= 2, run.effects.get(k)) for k in run.long} == dict.fromkeys(
        run.long, (True, 1)
    )
