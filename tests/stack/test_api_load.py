"""The API of the running stack under a mixed flood (issue 17 item 3).

:data:`CLIENTS` concurrent clients (one spawned process, asyncio, one keep-alive
connection each) call every endpoint for :data:`SECONDS` seconds, weighted by
:data:`MIX`, with a burst in which all of them ask ``GET /workers`` at once (the flood
that used to wedge the API for good).
Meanwhile this process asks ``/healthz`` every :data:`PROBE_EVERY` seconds, as a monitor
would. Passing: no 5xx and no failed request, ``/healthz`` p99 under
:data:`HEALTHZ_P99_MS`, and the API serving normally right after. The numbers go to
``build/api-load.json``.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.conftest import DOTENV, ROOT
from tests.stack.conftest import STACK_ENV, Stack

BASE = f"http://127.0.0.1:{STACK_ENV['APP_HOST_PORT']}"
AUTH = {"Authorization": f"Bearer {DOTENV['API_TOKEN']}"}
CLIENTS = 200
SECONDS = 60.0
#: Seconds into the run during which every client asks ``GET /workers`` only.
WORKERS_BURST = (20.0, 26.0)
PROBE_EVERY = 0.1
HEALTHZ_P99_MS = 500.0
OUT = ROOT / "build" / "api-load.json"
#: (weight, label): what a client asks next.
MIX = [
    (25, "workers"),
    (5, "submit"),
    (15, "task_status"),
    (2, "revoke"),
    (8, "queues"),
    (5, "metrics"),
    (8, "dead_letters"),
    (5, "readyz"),
    (5, "healthz"),
    (3, "catalog"),
    (3, "workflow_names"),
    (4, "workflow_missing"),
    (4, "job_missing"),
    (4, "unauthenticated"),
]


class Client:
    """One flooding client: one keep-alive HTTP/1.1 connection (reopened when lost), a
    request at a time. Minimal on purpose: httpx's pool costs the load generator more
    CPU than the API spends per request, and the generator shares the API's host."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None

    async def request(
        self, method: str, path: str, body: Any = None, token: bool = True
    ) -> tuple[int, bytes]:
        """``(status, body)``; raises ``OSError``/``asyncio`` errors when it fails."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(data)}"]
        head += [f"Authorization: {AUTH['Authorization']}"] if token else []
        head += ["Content-Type: application/json"] if body is not None else []
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        payload = await reader.readexactly(length)
        if close:
            self.close()
        return int(status_line.split()[1]), payload


async def _one(client: Client, label: str, ids: list[str]) -> int:
    """One request of kind ``label``; its status."""
    some_id = random.choice(ids) if ids else "0f8fad5b-d9cb-469f-a165-70867728950e"
    if label == "submit":
        body = {"task": "add", "args": {"x": 1, "y": 2}}
        status, payload = await client.request("POST", "/tasks", body)
        if status == 202:
            ids.append(json.loads(payload)["task_id"])
        return status
    if label == "revoke":
        return (await client.request("DELETE", f"/tasks/{some_id}"))[0]
    path = {
        "workers": "/workers",
        "task_status": f"/tasks/{some_id}",
        "queues": "/queues",
        "metrics": "/metrics",
        "dead_letters": "/dead-letters",
        "readyz": "/readyz",
        "healthz": "/healthz",
        "catalog": "/catalog",
        "workflow_names": "/workflows",
        "workflow_missing": f"/workflows/{uuid.uuid4()}",
        "job_missing": f"/jobs/{uuid.uuid4()}",
        "unauthenticated": f"/tasks/{some_id}",
    }[label]
    return (await client.request("GET", path, token=label != "unauthenticated"))[0]


async def _flood(base: str, clients: int, seconds: float) -> dict[str, Any]:
    started = time.monotonic()
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    failures: Counter[str] = Counter()
    ids: list[str] = []
    weights, labels = zip(*MIX, strict=True)
    address = urlsplit(base)
    assert address.hostname and address.port

    async def run(client: Client) -> None:
        while (elapsed := time.monotonic() - started) < seconds:
            burst = WORKERS_BURST[0] <= elapsed < WORKERS_BURST[1]
            label = "workers" if burst else random.choices(labels, weights)[0]
            sent = time.monotonic()
            try:
                status = await asyncio.wait_for(_one(client, label, ids), 30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                failures[f"{label}: {type(exc).__name__}"] += 1
                client.close()
                continue
            latencies[label].append((time.monotonic() - sent) * 1000)
            statuses[label][status] += 1
        client.close()

    await asyncio.gather(*(run(Client(address.hostname, address.port)) for _ in range(clients)))
    return {
        "clients": clients,
        "seconds": round(time.monotonic() - started, 1),
        "requests": sum(len(v) for v in latencies.values()),
        "failures": dict(failures),
        "endpoints": {
            label: {"statuses": dict(statuses[label]), **_percentiles(latencies[label])}
            for label in sorted(latencies)
        },
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1) if ordered else 0.0

    return {"count": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


def run_flood(base: str, clients: int, seconds: float, out: str) -> None:
    """The load generator's process: :func:`_flood`, its numbers written to ``out``."""
    with open(out, "w") as f:
        json.dump(asyncio.run(_flood(base, clients, seconds)), f, indent=2)


class HealthProbe:
    """``GET /healthz`` every :data:`PROBE_EVERY` seconds in a thread, while in the block."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.wait(PROBE_EVERY):
                sent = time.monotonic()
                try:
                    status = session.get(f"{BASE}/healthz", timeout=10).status_code
                except requests.RequestException as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                self.latencies.append((time.monotonic() - sent) * 1000)
                if status != 200:
                    self.failures.append(str(status))

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_the_api_holds_under_a_mixed_flood(stack: Stack) -> None:
    """200 clients, every endpoint, a /workers burst, 60 s: no 5xx, no failed request,
    /healthz p99 < 500 ms, then the API serves normally."""
    OUT.parent.mkdir(exist_ok=True)
    raw = OUT.with_suffix(".flood.json")
    flood = multiprocessing.get_context("spawn").Process(
        target=run_flood, args=(BASE, CLIENTS, SECONDS, str(raw))
    )
    with HealthProbe() as probe:
        flood.start()
        flood.join(SECONDS + 180)
    assert flood.exitcode == 0, "the load generator failed or did not finish"
    numbers = json.loads(raw.read_text())
    numbers["healthz_probe"] = {"failures": probe.failures, **_percentiles(probe.latencies)}
    OUT.write_text(json.dumps(numbers, indent=2))
    print(json.dumps(numbers, indent=2))  # noqa: T201 - the numbers, for the record

    server_errors = {
        label: codes
        for label, e in numbers["endpoints"].items()
        if (codes := {c: n for c, n in e["statuses"].items() if int(c) >= 500})
    }
    assert server_errors == {} and numbers["failures"] == {}, numbers
    assert {label for _, label in MIX} <= set(numbers["endpoints"])
    assert probe.failures == [] and numbers["healthz_probe"]["p99_ms"] < HEALTHZ_P99_MS

    # Right after: serving normally.
    assert requests.get(f"{BASE}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{BASE}/readyz", timeout=10).json()["ready"] is True
    assert requests.get(f"{BASE}/workers", headers=AUTH, timeout=15).json()["workers"]
    body = {"task": "add", "args": {"x": 2, "y": 3}}
    accepted = requests.post(f"{BASE}/tasks", json=body, headers=AUTH, timeout=10)
    assert accepted.status_code == 202
    status_url = accepted.json()["status_url"]
    assert requests.get(status_url, headers=AUTH, timeout=10).status_code == 200
