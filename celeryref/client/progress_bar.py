"""Live progress display for the CLI: a redrawn bar on a terminal, lines otherwise."""

from __future__ import annotations

import time
from typing import Any, TextIO

from celery.result import AsyncResult

from celeryref.observability.progress import read_progress

#: Characters of the bar.
WIDTH = 30


def render(percent: float, status: str) -> str:
    """``[#######.......]  25.0% step 3 of 12``."""
    filled = int(WIDTH * max(0.0, min(100.0, percent)) / 100)
    return f"[{'#' * filled}{'.' * (WIDTH - filled)}] {percent:5.1f}% {status}"


def watch(result: AsyncResult, out: TextIO, timeout: float, label: str = "") -> str:
    """Show ``result``'s PROGRESS until it finishes or ``timeout`` passes; return its state."""
    tty = out.isatty()
    deadline = time.monotonic() + timeout
    last: Any = None
    state = result.state
    while time.monotonic() < deadline:
        state, meta = read_progress(result)
        if state in ("SUCCESS", "FAILURE", "REVOKED", "REJECTED"):
            break
        if meta is not None and meta != last:
            line = f"{label}{render(float(meta.get('percent', 0.0)), str(meta.get('status', '')))}"
            out.write(f"\r{line}" if tty else f"{line}\n")
            out.flush()
            last = meta
        time.sleep(0.2)
    if tty and last is not None:
        out.write("\n")
    return str(state)
