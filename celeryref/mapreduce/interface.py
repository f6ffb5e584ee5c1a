"""The interface of a processing function, and helpers for its partials.

A function is three steps over JSON-safe *partials*:

* ``map(items)`` folds an iterable of items into a small partial (counts and
  :class:`~celeryref.mapreduce.exact.Stats`; never a list of items);
* ``combine(partials)`` merges partials; it is associative and commutative, so
  partitions can finish in any order and be merged in any grouping;
* ``finalize(partial)`` turns the merged partial into the result.

``finalize(combine([map(p) for p in partitions])) == finalize(map(all items))``,
exactly, for every way of partitioning (integers and exact sums only). The four
functions are in :mod:`celeryref.mapreduce.functions`.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from celeryref.errors import InvalidArguments
from celeryref.mapreduce import records
from celeryref.mapreduce.exact import Stats
from celeryref.mapreduce.expressions import Expression, compile_expression

#: Keys every partial has: how many items it covers.
ITEMS = "items"


class Function(ABC):
    """A processing function with checked options (``self.options``, JSON-safe)."""

    #: The name jobs use (``mapreduce_jobs.function``).
    name: ClassVar[str]
    #: Option name -> default; other keys are refused.
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        given = dict(options or {})
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            raise InvalidArguments(
                f"{self.name}: unknown option(s) {unknown}; known: {sorted(self.defaults)}"
            )
        #: The options in effect, defaults filled in (stored with the job).
        self.options: dict[str, Any] = copy.deepcopy({**self.defaults, **given})
        self.configure()

    @abstractmethod
    def configure(self) -> None:
        """Check ``self.options`` and compile its expressions."""

    @abstractmethod
    def map(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """The partial of ``items`` (one pass; ``items`` may be a stream)."""

    @abstractmethod
    def combine(self, partials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """One partial equivalent to all of ``partials`` (an empty iterable is fine)."""

    @abstractmethod
    def finalize(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        """The job's result from the combined partial."""

    def run(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Single pass over everything: the reference the distributed run must equal."""
        return self.finalize(self.map(items))

    # -- option helpers ----------------------------------------------------------

    def option_bool(self, key: str) -> bool:
        value = self.options[key]
        if not isinstance(value, bool):
            raise InvalidArguments(f"{self.name}: option {key!r} must be true or false")
        return value

    def option_expression(self, key: str, optional: bool = False) -> Expression | None:
        value = self.options[key]
        if value is None and optional:
            return None
        return compile_expression(value)

    def option_mapping(self, key: str) -> dict[str, Any]:
        value = self.options[key]
        if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
            raise InvalidArguments(f"{self.name}: option {key!r} must be an object")
        if len(value) > 50:
            raise InvalidArguments(f"{self.name}: option {key!r} has more than 50 entries")
        return value

    def option_names(self, key: str, allowed: Iterable[str] | None = None) -> list[str]:
        value = self.options[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidArguments(f"{self.name}: option {key!r} must be a list of names")
        if allowed is not None and not set(value) <= set(allowed):
            raise InvalidArguments(f"{self.name}: option {key!r} allows only {sorted(allowed)}")
        return list(dict.fromkeys(value))


# -- merging helpers shared by the functions ---------------------------------------------


def add_counts(into: dict[str, int], counts: Mapping[str, int]) -> dict[str, int]:
    for key, count in counts.items():
        into[key] = into.get(key, 0) + int(count)
    return into


def merge_stats(into: dict[str, Stats], stats: Mapping[str, Mapping[str, Any]]) -> None:
    for key, data in stats.items():
        into.setdefault(key, Stats()).merge(Stats.from_json(dict(data)))


def sorted_dict(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: mapping[key] for key in sorted(mapping)}


def total_items(partials: Iterable[Mapping[str, Any]]) -> int:
    return sum(int(p[ITEMS]) for p in partials)


def numeric(value: Any) -> bool:
    """Whether ``value`` can enter :class:`Stats` (a number, not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def normalizer(enabled: bool) -> Any:
    """``item -> item`` that normalizes (:func:`~celeryref.mapreduce.records.normalize`) or not."""
    return (lambda item: records.normalize(item)[0]) if enabled else (lambda item: item)
