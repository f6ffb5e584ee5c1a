"""Canvas, demonstrated: chain, group, chord, chunks, map/starmap, map-reduce.

Client code: each builder returns a signature made from task NAMES (the client
never imports task modules); ``.apply_async()`` runs it, ``.get()`` on the CLIENT
side waits for it. Tasks never wait for other tasks: the canvas links them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from celery import chain, chord, chunks, group, xmap, xstarmap
from celery.canvas import Signature

from celeryref.celery_app import app

#: The tasks the demonstrations use, by name (``celeryref.tasks.default``).
ADD = "celeryref.tasks.default.add"
MULTIPLY = "celeryref.tasks.default.multiply"
SQUARE = "celeryref.tasks.default.canvas_demo.square"
XSUM = "celeryref.tasks.default.canvas_demo.xsum"


def _sig(name: str, *args: Any) -> Signature:
    return app.signature(name, args=args)


def chain_demo(x: float, y: float, factor: float) -> Signature:
    """``(x + y) * factor``, then squared: each result feeds the next task."""
    return chain(
        _sig(ADD, x, y),
        _sig(MULTIPLY, factor),
        _sig(
            SQUARE,
        ),
    )


def group_demo(numbers: Iterable[float]) -> Signature:
    """Squares of ``numbers`` in parallel; the group's result is the list, in order."""
    return group(_sig(SQUARE, n) for n in numbers)


def chord_demo(numbers: Iterable[float]) -> Signature:
    """Sum of squares: the squares in parallel, then one ``xsum`` over all of them."""
    return chord((_sig(SQUARE, n) for n in numbers), _sig(XSUM))


def chunks_demo(pairs: Sequence[tuple[float, float]], size: int) -> Signature:
    """``add`` over many pairs in ``ceil(len/size)`` messages of ``size`` calls each."""
    return chunks(_sig(ADD), pairs, size).group()


def map_demo(numbers: Sequence[float]) -> Signature:
    """``square`` over ``numbers`` in ONE message (``task.map``), a list back."""
    return xmap(_sig(SQUARE), numbers)


def starmap_demo(pairs: Sequence[tuple[float, float]]) -> Signature:
    """``add(*pair)`` for every pair in ONE message."""
    return xstarmap(_sig(ADD), pairs)


def map_reduce_demo(numbers: Sequence[float], size: int) -> Signature:
    """Sum of squares at scale: chunks of ``square`` in parallel (map), ``xsum`` of each
    chunk, then ``xsum`` of the partial sums (reduce)."""
    parts = [numbers[i : i + size] for i in range(0, len(numbers), size)]
    return chord((chain(xmap(_sig(SQUARE), p), _sig(XSUM)) for p in parts), _sig(XSUM))
