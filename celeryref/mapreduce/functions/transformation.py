"""``transformation``: normalize fields, compute calculated fields -> change counts, stats."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from celeryref.mapreduce import records
from celeryref.mapreduce.exact import Stats
from celeryref.mapreduce.expressions import EvaluationError, compile_expression
from celeryref.mapreduce.interface import (
    ITEMS,
    Function,
    add_counts,
    merge_stats,
    numeric,
    sorted_dict,
    total_items,
)


class Transformation(Function):
    """Normalizes items and computes calculated fields; reports their statistics."""

    name = "transformation"
    defaults: ClassVar[dict[str, Any]] = {
        "normalize": True,
        "calculated": {"total": "amount * quantity"},
    }

    def configure(self) -> None:
        self.normalize = self.option_bool("normalize")
        calculated = self.option_mapping("calculated")
        self.calculated = [(n, compile_expression(e)) for n, e in calculated.items()]

    def map(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        count = 0
        normalized: dict[str, int] = {}
        stats = {name: Stats() for name, _ in self.calculated}
        errors = dict.fromkeys(stats, 0)
        for raw in items:
            count += 1
            item, changed = records.normalize(raw) if self.normalize else (raw, ())
            for name in changed:
                normalized[name] = normalized.get(name, 0) + 1
            for name, expression in self.calculated:
                try:
                    value = expression.evaluate(item)
                except EvaluationError:
                    value = None
                if numeric(value):
                    stats[name].add(value)
                else:
                    errors[name] += 1
        calculated = {n: {"stats": s.to_json(), "errors": errors[n]} for n, s in stats.items()}
        return {ITEMS: count, "normalized": normalized, "calculated": calculated}

    def combine(self, partials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        parts = list(partials)
        normalized: dict[str, int] = {}
        stats: dict[str, Stats] = {name: Stats() for name, _ in self.calculated}
        errors = dict.fromkeys(stats, 0)
        for p in parts:
            add_counts(normalized, p["normalized"])
            merge_stats(stats, {n: c["stats"] for n, c in p["calculated"].items()})
            add_counts(errors, {n: c["errors"] for n, c in p["calculated"].items()})
        calculated = {n: {"stats": s.to_json(), "errors": errors[n]} for n, s in stats.items()}
        return {ITEMS: total_items(parts), "normalized": normalized, "calculated": calculated}

    def finalize(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        calculated = {
            name: {**Stats.from_json(c["stats"]).summary(), "errors": c["errors"]}
            for name, c in sorted_dict(partial["calculated"]).items()
        }
        normalized = sorted_dict(partial["normalized"])
        return {ITEMS: partial[ITEMS], "normalized": normalized, "calculated": calculated}
