"""The two tasks the canvas demonstrations need besides ``add``/``multiply``.

The demonstrations themselves (chain, group, chord, chunks, map/starmap,
map-reduce) are client code: :mod:`celeryref.client.canvas` builds them from task
names. Tasks never wait for other tasks: the canvas links them.
"""

from __future__ import annotations

from celeryref.celery_app import app
from celeryref.errors import InvalidArguments
from celeryref.tasks.default import _number


@app.task
def square(x: float) -> float:
    """``x * x``."""
    value = _number(x, "x")
    return value * value


@app.task
def xsum(numbers: list[float]) -> float:
    """The sum of ``numbers`` (a chord body receives its header's results as a list)."""
    if not isinstance(numbers, list):
        raise InvalidArguments("numbers must be a list")
    return sum(_number(n, f"numbers[{i}]") for i, n in enumerate(numbers))
