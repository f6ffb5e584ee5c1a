"""``aggregation``: group by a field or expression -> count/sum/avg/min/max per group."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from celeryref.errors import InvalidArguments
from celeryref.mapreduce.exact import Stats
from celeryref.mapreduce.expressions import EvaluationError
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

#: Aggregation metrics, in output order.
METRICS = ("count", "sum", "avg", "min", "max")
#: Most distinct groups an aggregation may produce (a partial must stay small).
MAX_GROUPS = 100_000


class Aggregation(Function):
    """Group by a field (or expression); count items and summarize a value per group."""

    name = "aggregation"
    defaults: ClassVar[dict[str, Any]] = {
        "group_by": "region",
        "value": "amount",
        "metrics": list(METRICS),
        "normalize": True,
        "max_groups": 1_000,
    }

    def configure(self) -> None:
        self.group_by = self.option_expression("group_by", optional=True)
        self.value = self.option_expression("value", optional=True)
        self.metrics = self.option_names("metrics", METRICS)
        self.max_groups = self.options["max_groups"]
        if not isinstance(self.max_groups, int) or not 1 <= self.max_groups <= MAX_GROUPS:
            raise InvalidArguments(f"aggregation: max_groups must be in 1..{MAX_GROUPS}")
        self.prepare_item = normalizer(self.option_bool("normalize"))

    def _check_groups(self, groups: Mapping[str, Any]) -> None:
        if len(groups) > self.max_groups:
            raise InvalidArguments(
                f"aggregation: group_by {self.options['group_by']!r} has more than "
                f"{self.max_groups} distinct values (raise max_groups or group by another field)"
            )

    def _key(self, item: Mapping[str, Any]) -> str | None:
        if self.group_by is None:
            return "all"
        try:
            key = self.group_by.evaluate(item)
        except EvaluationError:
            return None
        return None if key is None or key == "" else str(key)

    def map(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        count = 0
        members: dict[str, int] = {}
        values: dict[str, Stats] = {}
        skipped = {"missing_group": 0, "invalid_value": 0}
        for raw in items:
            count += 1
            item = self.prepare_item(raw)
            key = self._key(item)
            if key is None:
                skipped["missing_group"] += 1
                continue
            if key not in members and len(members) >= self.max_groups:
                self._check_groups({**members, key: 0})
            members[key] = members.get(key, 0) + 1
            if self.value is None:
                continue
            try:
                value = self.value.evaluate(item)
            except EvaluationError:
                value = None
            if numeric(value):
                values.setdefault(key, Stats()).add(value)
            else:
                skipped["invalid_value"] += 1
        groups = {key: s.to_json() for key, s in values.items()}
        return {ITEMS: count, "members": members, "groups": groups, "skipped": skipped}

    def combine(self, partials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        parts = list(partials)
        members: dict[str, int] = {}
        values: dict[str, Stats] = {}
        skipped = {"missing_group": 0, "invalid_value": 0}
        for p in parts:
            add_counts(members, p["members"])
            merge_stats(values, p["groups"])
            add_counts(skipped, p["skipped"])
        self._check_groups(members)
        groups = {key: s.to_json() for key, s in values.items()}
        return {ITEMS: total_items(parts), "members": members, "groups": groups, "skipped": skipped}

    def finalize(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        groups: dict[str, Any] = {}
        for key, count in sorted_dict(partial["members"]).items():
            summary = Stats.from_json(partial["groups"].get(key, Stats().to_json())).summary()
            row: dict[str, Any] = {"count": count}
            if self.value is not None:
                row["values"] = summary["count"]
                row.update((m, summary[m]) for m in self.metrics if m != "count")
            groups[key] = row
        return {ITEMS: partial[ITEMS], "groups": groups, "skipped": dict(partial["skipped"])}
