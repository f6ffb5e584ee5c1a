"""``analysis``: a metric per item and categorization rules -> stats per category."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from celeryref.errors import InvalidArguments
from celeryref.mapreduce.exact import Stats
from celeryref.mapreduce.expressions import EvaluationError, Expression, compile_expression
from celeryref.mapreduce.interface import (
    ITEMS,
    Function,
    add_counts,
    merge_stats,
    normalizer,
    numeric,
    sorted_dict,
    total_items,
)


class Analysis(Function):
    """A metric per item, items sorted into the first category whose rule holds."""

    name = "analysis"
    defaults: ClassVar[dict[str, Any]] = {
        "metric": "amount * quantity",
        "categories": [
            {"name": "large", "when": "amount * quantity >= 1000"},
            {"name": "medium", "when": "amount * quantity >= 100"},
            {"name": "small", "when": "amount * quantity >= 0"},
        ],
        "default_category": "unclassified",
        "normalize": True,
    }

    def configure(self) -> None:
        self.metric = compile_expression(self.options["metric"])
        rules = self.options["categories"]
        if not isinstance(rules, list) or len(rules) > 50:
            raise InvalidArguments("analysis: categories must be a list of at most 50 rules")
        self.rules: list[tuple[str, Expression]] = []
        for rule in rules:
            if not isinstance(rule, dict) or set(rule) != {"name", "when"}:
                raise InvalidArguments('analysis: each category is {"name": ..., "when": ...}')
            if not isinstance(rule["name"], str) or not rule["name"]:
                raise InvalidArguments("analysis: a category name must be a non-empty string")
            self.rules.append((rule["name"], compile_expression(rule["when"])))
        default = self.options["default_category"]
        if not isinstance(default, str) or not default:
            raise InvalidArguments("analysis: default_category must be a non-empty string")
        self.default: str = default
        self.prepare_item = normalizer(self.option_bool("normalize"))

    def _category(self, item: Mapping[str, Any]) -> str:
        for name, rule in self.rules:
            try:
                if rule.evaluate(item):
                    return name
            except EvaluationError:
                continue
        return self.default

    def map(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        count = metric_errors = 0
        overall = Stats()
        members: dict[str, int] = {}
        by_category: dict[str, Stats] = {}
        for raw in items:
            count += 1
            item = self.prepare_item(raw)
            category = self._category(item)
            members[category] = members.get(category, 0) + 1
            try:
                value = self.metric.evaluate(item)
            except EvaluationError:
                value = None
            if numeric(value):
                overall.add(value)
                by_category.setdefault(category, Stats()).add(value)
            else:
                metric_errors += 1
        return {
            ITEMS: count,
            "metric": overall.to_json(),
            "metric_errors": metric_errors,
            "members": members,
            "categories": {name: s.to_json() for name, s in by_category.items()},
        }

    def combine(self, partials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        parts = list(partials)
        overall: dict[str, Stats] = {"metric": Stats()}
        members: dict[str, int] = {}
        by_category: dict[str, Stats] = {}
        for p in parts:
            merge_stats(overall, {"metric": p["metric"]})
            add_counts(members, p["members"])
            merge_stats(by_category, p["categories"])
        return {
            ITEMS: total_items(parts),
            "metric": overall["metric"].to_json(),
            "metric_errors": sum(int(p["metric_errors"]) for p in parts),
            "members": members,
            "categories": {name: s.to_json() for name, s in by_category.items()},
        }

    def finalize(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        items = int(partial[ITEMS])
        categories = {
            name: {
                ITEMS: count,
                "share": count / items,
                "metric": Stats.from_json(
                    partial["categories"].get(name, Stats().to_json())
                ).summary(),
            }
            for name, count in sorted_dict(partial["members"]).items()
        }
        return {
            ITEMS: items,
            "metric": Stats.from_json(partial["metric"]).summary(),
            "metric_errors": partial["metric_errors"],
            "categories": categories,
        }
