"""Apply the SQL migrations in ``celeryref/adapters/migrations`` in order, each once.

Run by the one-shot ``migrate`` service before any Python service starts
(``python -m celeryref.adapters.migrate``). Each file runs in its own transaction together
with its row in ``schema_migrations``; a Postgres advisory lock serializes
concurrent runs, so running it twice, or twice at once, changes nothing.
"""

from __future__ import annotations

import logging
import sys
from importlib import resources

import psycopg2

from celeryref.observability.logs import configure as configure_logging
from celeryref.settings import settings

logger = logging.getLogger(__name__)

#: Arbitrary constant identifying the migration advisory lock.
ADVISORY_LOCK_ID = 0x0CE1E41


def migration_files() -> list[tuple[str, str]]:
    """``(version, sql)`` of every ``NNNN_name.sql`` file, ordered by version."""
    folder = resources.files("celeryref.adapters.migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(dsn: str | None = None) -> list[str]:
    """Apply pending migrations; return the versions applied by this call."""
    applied: list[str] = []
    conn = psycopg2.connect(dsn or settings.database_dsn, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
        conn.autocommit = False
        for version, sql in migration_files():
            if version in done:
                continue
            with conn, conn.cursor() as cur:  # one transaction per file
                cur.execute(sql)
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            logger.info("applied migration %s", version)
            applied.append(version)
    finally:
        conn.close()  # also releases the advisory lock
    return applied


def main() -> int:
    configure_logging(logging.INFO)
    applied = migrate()
    logger.info("schema up to date (%d applied now)", len(applied))
    return 0


if __name__ == "__main__":
    sys.exit(main())
