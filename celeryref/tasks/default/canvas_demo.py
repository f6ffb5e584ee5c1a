"""Canvas, demonstrated: chain, group, chord, chunks, map/starmap, map-reduce.

Each builder returns a signature; ``.apply_async()`` runs it, ``.get()`` on the
CLIENT side waits for it. Tasks never wait for other tasks: the canvas links them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from celery import chain, chord, group
from celery.canvas import Signature

from celeryref.celery_app import app
from celeryref.errors import InvalidArguments
from celeryref.tasks.default import _number, add, multiply


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


def chain_demo(x: float, y: float, factor: float) -> Signature:
    """``(x + y) * factor``, then squared: each result feeds the next task."""
    return chain(add.s(x, y), multiply.s(factor), square.s())


def group_demo(numbers: Iterable[float]) -> Signature:
    """Squares of ``numbers`` in parallel; the group's result is the list, in order."""
    return group(square.s(n) for n in numbers)


def chord_demo(numbers: Iterable[float]) -> Signature:
    """Sum of squares: the squares in parallel, then one ``xsum`` over all of them."""
    return chord((square.s(n) for n in numbers), xsum.s())


def chunks_demo(pairs: Sequence[tuple[float, float]], size: int) -> Signature:
    """``add`` over many pairs in ``ceil(len/size)`` messages of ``size`` calls each."""
    return add.chunks(pairs, size).group()


def map_demo(numbers: Sequence[float]) -> Signature:
    """``square`` over ``numbers`` in ONE message (``task.map``), a list back."""
    return square.map(numbers)


def starmap_demo(pairs: Sequence[tuple[float, float]]) -> Signature:
    """``add(*pair)`` for every pair in ONE message."""
    return add.starmap(pairs)


def map_reduce_demo(numbers: Sequence[float], size: int) -> Signature:
    """Sum of squares at scale: chunks of ``square`` in parallel (map), ``xsum`` of each
    chunk, then ``xsum`` of the partial sums (reduce)."""
    parts = [numbers[i : i + size] for i in range(0, len(numbers), size)]
    return chord((chain(square.map(p), xsum.s()) for p in parts), xsum.s())
