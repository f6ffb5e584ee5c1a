"""The ``PROGRESS`` state: what long tasks report and clients display.

A task calls ``self.update_state(state=PROGRESS, meta=progress_meta(current, total))``;
a client calls :func:`read_progress`, which reads state and meta in ONE backend
read (reading ``result.state`` then ``result.info`` races with the task finishing).
"""

from __future__ import annotations

from typing import Any, Final

from celery.result import AsyncResult

PROGRESS: Final = "PROGRESS"


def progress_meta(current: int, total: int, status: str | None = None) -> dict[str, Any]:
    """The meta clients display: current, total, percent and a status line."""
    return {
        "current": current,
        "total": total,
        "percent": round(100.0 * current / total, 1) if total else 100.0,
        "status": status or f"step {current} of {total}",
    }


def read_progress(result: AsyncResult) -> tuple[str, dict[str, Any] | None]:
    """``(state, progress meta or None)`` from one consistent snapshot of ``result``."""
    meta = result.backend.get_task_meta(result.id)
    state = str(meta.get("status"))
    info = meta.get("result")
    return state, info if state == PROGRESS and isinstance(info, dict) else None
