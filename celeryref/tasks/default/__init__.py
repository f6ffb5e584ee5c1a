"""Tasks of the ``default`` queue: small, fast, pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from celeryref.adapters import db_ops
from celeryref.celery_app import app
from celeryref.errors import InvalidArguments
from celeryref.reliability.retry import RetryPolicy


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArguments(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidArguments(f"{name} must be finite, got {value!r}")
    return value


def summarize_numbers(numbers: Sequence[float]) -> dict[str, float | int]:
    """Count, sum, mean, min and max of ``numbers`` (at least one number)."""
    if not isinstance(numbers, list | tuple) or not numbers:
        raise InvalidArguments("numbers must be a non-empty list of numbers")
    values = [_number(n, f"numbers[{i}]") for i, n in enumerate(numbers)]
    total = math.fsum(values)
    return {
        "count": len(values),
        "sum": total,
        "mean": total / len(values),
        "min": min(values),
        "max": max(values),
    }


@app.task
def add(x: float, y: float) -> float:
    """``x + y``."""
    return _number(x, "x") + _number(y, "y")


@app.task
def multiply(x: float, y: float) -> float:
    """``x * y``."""
    return _number(x, "x") * _number(y, "y")


@app.task
def summarize(numbers: list[float]) -> dict[str, float | int]:
    """Summary statistics of ``numbers``; see :func:`summarize_numbers`."""
    return summarize_numbers(numbers)


@app.task(retry_policy=RetryPolicy(max_retries=5, base_delay=0.5, max_delay=30.0))
def resilient_db_operation(operation: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the allowlisted database operation ``operation`` (never SQL from a message).

    Connection errors are retried after the worker's pool was reset.
    """
    return db_ops.run_named(operation, params)
