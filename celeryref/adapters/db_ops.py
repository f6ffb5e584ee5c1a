"""Resilient database operations: named, allowlisted statements only (SPEC F9).

A message names an operation and passes parameters; it never carries SQL text.
Each operation is a constant statement with psycopg2 placeholders, so a message
cannot change what runs. Connection-level errors (server restarting, connection
dropped) become :class:`~celeryref.errors.DatabaseUnavailable`, which the task's
retry policy retries after the pool was reset (see :mod:`celeryref.reliability.error_log`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import psycopg2

from celeryref.adapters import db
from celeryref.errors import DatabaseUnavailable, InvalidArguments

#: operation name -> (statement, required parameter names)
STATEMENTS: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    "count_active_sessions": (
        "SELECT count(*) FROM user_sessions WHERE expires_at >= now()",
        frozenset(),
    ),
    "expire_user_sessions": (
        "UPDATE user_sessions SET expires_at = now() WHERE user_id = %(user_id)s"
        " AND expires_at > now()",
        frozenset({"user_id"}),
    ),
    "delete_expired_sessions": (
        "DELETE FROM user_sessions WHERE expires_at < now()",
        frozenset(),
    ),
}


def run_named(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the allowlisted operation ``name``; return its rows or its row count."""
    if name not in STATEMENTS:
        raise InvalidArguments(
            f"unknown database operation {name!r}; allowed: {sorted(STATEMENTS)}"
        )
    statement, required = STATEMENTS[name]
    params = dict(params or {})
    if set(params) != required:
        raise InvalidArguments(f"{name} takes parameters {sorted(required)}, got {sorted(params)}")
    try:
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            if cur.description is not None:
                return {"rows": [list(r) for r in cur.fetchall()]}
            return {"rowcount": cur.rowcount}
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        raise DatabaseUnavailable(f"{name}: {exc}".strip()) from exc
