"""The processing functions a job can run, by name: an allowlist (:data:`FUNCTIONS`).

=================  ============================================================
``validation``     required fields, types, rules -> valid/invalid counts per reason
``transformation`` normalize fields, calculated fields -> change counts, stats
``analysis``       a metric, categorization rules -> stats per category
``aggregation``    group by a field or expression -> count/sum/avg/min/max
=================  ============================================================

Every function returns aggregates (counts and exact statistics), never items,
so partials stay small whatever the dataset size. See
:mod:`celeryref.mapreduce.interface` for the map/combine/finalize contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeryref.errors import InvalidArguments
from celeryref.mapreduce.functions.aggregation import Aggregation
from celeryref.mapreduce.functions.analysis import Analysis
from celeryref.mapreduce.functions.transformation import Transformation
from celeryref.mapreduce.functions.validation import Validation
from celeryref.mapreduce.interface import Function

__all__ = [
    "FUNCTIONS",
    "Aggregation",
    "Analysis",
    "Function",
    "Transformation",
    "Validation",
    "prepare",
]


#: Name -> function class; jobs can run these and nothing else.
FUNCTIONS: dict[str, type[Function]] = {
    f.name: f for f in (Validation, Transformation, Analysis, Aggregation)
}


def prepare(name: object, options: Mapping[str, Any] | None = None) -> Function:
    """The function ``name`` with ``options`` checked; ``InvalidArguments`` otherwise."""
    if not isinstance(name, str) or name not in FUNCTIONS:
        raise InvalidArguments(f"unknown function {name!r}; known: {sorted(FUNCTIONS)}")
    if options is not None and not isinstance(options, Mapping):
        raise InvalidArguments(f"options must be a JSON object, got {type(options).__name__}")
    return FUNCTIONS[name](options)
