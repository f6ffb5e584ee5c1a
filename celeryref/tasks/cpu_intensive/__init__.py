"""Tasks of the ``cpu_intensive`` queue: prefork pool, one process per core."""

from __future__ import annotations

import hashlib
from typing import Any

from celeryref.celery_app import app
from celeryref.errors import InvalidArguments
from celeryref.observability.progress import PROGRESS, progress_meta

#: Upper bound of ``long_task`` steps, so a typo cannot occupy a core for hours.
MAX_STEPS = 10_000
#: Upper bound of hash rounds per step.
MAX_WORK = 1_000_000


def burn(rounds: int, seed: bytes) -> bytes:
    """Chain ``rounds`` SHA-256 hashes starting from ``seed``: deterministic CPU work."""
    digest = seed
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


@app.task(bind=True)
def long_task(self: Any, n: int, work: int = 20_000) -> dict[str, Any]:
    """Run ``n`` steps of ``work`` hash rounds each, reporting ``PROGRESS`` after each."""
    if not isinstance(n, int) or not 0 < n <= MAX_STEPS:
        raise InvalidArguments(f"n must be an integer in 1..{MAX_STEPS}, got {n!r}")
    if not isinstance(work, int) or not 0 <= work <= MAX_WORK:
        raise InvalidArguments(f"work must be an integer in 0..{MAX_WORK}, got {work!r}")
    digest = self.request.id.encode() if self.request.id else b"seed"
    for step in range(1, n + 1):
        digest = burn(work, digest)
        self.update_state(state=PROGRESS, meta=progress_meta(step, n))
    return {"steps": n, "digest": digest.hex()}
