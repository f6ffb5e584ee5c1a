"""What the Swarm tier runs inside the stack's containers (Python, with the container's
own settings and secrets: the production profile publishes neither Redis nor Postgres),
and the file its measurements go to."""

from __future__ import annotations

import json

from tests.conftest import ROOT
from tests.swarm.conftest import Swarm

MEASUREMENTS = ROOT / "build" / "swarm-measurements.json"

#: Run in the app container: send record_event drills ``PREFIX-QUEUE-i`` (plan: queue ->
#: [count, hold seconds]), interleaving the queues; prints how many were sent.
SEND = """
import json, sys
from celeryref.celery_app import app
prefix, plan = sys.argv[1], json.loads(sys.argv[2])
sent = 0
with app.producer_or_acquire() as producer:
    for i in range(max(n for n, _ in plan.values())):
        for queue, (n, hold) in plan.items():
            if i < n:
                app.send_task("devtools.tasks.default.drills.record_event",
                              args=[f"{prefix}-{queue}-{i}", hold], queue=queue,
                              producer=producer)
                sent += 1
print(sent)
"""

#: Run in the app container: runs and effects per drill key under a prefix, as JSON.
COUNT = """
import json, sys, psycopg2
from celeryref.settings import settings
out = {}
with psycopg2.connect(settings.database_dsn) as conn, conn.cursor() as cur:
    for table in ("drill_runs", "drill_effects"):
        cur.execute(f"SELECT key, count(*) FROM {table} WHERE key LIKE %s GROUP BY key",
                    (sys.argv[1] + "-%",))
        out[table] = dict(cur.fetchall())
print(json.dumps(out))
"""

#: Run in a one-off container on the overlay: each service name's addresses, and a TCP
#: connection to it.
REACH = """
import json, socket
out = {}
for host, port in (("redis", 6379), ("postgres", 5432), ("app", 8000)):
    out[host] = sorted({a[4][0] for a in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})
    socket.create_connection((host, port), timeout=5).close()
print(json.dumps(out))
"""


def record(name: str, value: object) -> None:
    MEASUREMENTS.parent.mkdir(exist_ok=True)
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[name] = round(value, 1) if isinstance(value, float) else value
    MEASUREMENTS.write_text(json.dumps(data, indent=2, sort_keys=True))


def counts(swarm: Swarm, prefix: str) -> tuple[dict[str, int], dict[str, int]]:
    """(runs, effects) per drill key under ``prefix``."""
    out = json.loads(swarm.python("-c", COUNT, prefix, timeout=60))
    return out["drill_runs"], out["drill_effects"]
