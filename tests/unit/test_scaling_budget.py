"""docs/SCALING.md, "Postgres connections": what one replica of each service may hold,
computed from ``docker compose config`` (the compose defaults), against Postgres'
``max_connections``."""

from __future__ import annotations

from typing import Any

from celeryref.settings import Settings
from tests.support.compose import WORKERS
from tests.unit.test_compose_file import services  # noqa: F401 (the rendered compose file)

#: Postgres' ``max_connections`` in the deployment (the image's default).
MAX_CONNECTIONS = 100
#: Kept free for operators (psql), ``migrate`` and Postgres' superuser reserve (3).
RESERVED = 10
#: Cores of the host the budget is computed for: ``worker-cpu`` runs one process per core.
CORES = 2


def processes(service: dict[str, Any]) -> int:
    """Processes of a service that each hold a pool: prefork children (``--autoscale``'s
    maximum, ``--concurrency``, else one per core); one for a thread pool or the API."""
    command = [str(part) for part in service.get("command") or []]
    if "uvicorn" in command[:1] or any(p in command for p in ("threads", "custom")):
        return 1
    for flag in ("--autoscale", "--concurrency"):
        if flag in command:
            return int(command[command.index(flag) + 1].split(",")[0])
    return CORES


def budget(rendered: dict[str, Any]) -> dict[str, int]:
    """Connections one replica of each service may open: processes x ``DB_POOL_MAX``."""
    default_pool = Settings.model_fields["db_pool_max"].default
    found = {}
    for name, service in rendered.items():
        command = [str(part) for part in service.get("command") or []]
        if name == "app" or "worker" in command:
            pool = int((service.get("environment") or {}).get("DB_POOL_MAX") or default_pool)
            found[name] = processes(service) * pool
    return found


def test_one_replica_of_each_service_fits_in_max_connections(
    services: dict[str, Any],  # noqa: F811 (the fixture)
) -> None:
    found = budget(services)
    assert set(found) == {"app", *WORKERS}, found
    assert sum(found.values()) <= MAX_CONNECTIONS - RESERVED, found


def test_the_budget_counts_what_each_pool_kind_holds() -> None:
    """The rule itself: a prefork worker holds a pool per child, a thread pool one."""
    prefork = {"command": ["celery", "worker", "--autoscale", "4,2"]}
    threads = {"command": ["celery", "worker", "--pool", "custom", "--concurrency", "32"]}
    per_core = {"command": ["celery", "worker", "--pool", "prefork"]}
    assert (processes(prefork), processes(threads), processes(per_core)) == (4, 1, CORES)
