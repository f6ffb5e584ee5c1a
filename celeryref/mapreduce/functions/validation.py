"""``validation``: required fields, types and rules -> valid/invalid counts per reason."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from celeryref.errors import InvalidArguments
from celeryref.mapreduce import records
from celeryref.mapreduce.expressions import EvaluationError, compile_expression
from celeryref.mapreduce.interface import (
    ITEMS,
    Function,
    add_counts,
    normalizer,
    sorted_dict,
    total_items,
)


class Validation(Function):
    """Counts valid items and, per reason (``missing:F``, ``type:F``, ``rule:R``), invalid ones."""

    name = "validation"
    defaults: ClassVar[dict[str, Any]] = {
        "required": list(records.FIELDS),
        "types": dict(records.DEFAULT_TYPES),
        "rules": {"amount_not_negative": "amount >= 0", "quantity_positive": "quantity > 0"},
        "normalize": False,
    }

    def configure(self) -> None:
        self.required = self.option_names("required")
        types = self.option_mapping("types")
        unknown = sorted(set(types.values()) - set(records.TYPE_CHECKS))
        if unknown:
            raise InvalidArguments(f"validation: unknown types {unknown}")
        self.types = [(f, records.TYPE_CHECKS[t]) for f, t in types.items()]
        rules = self.option_mapping("rules")
        self.rules = [(f"rule:{n}", compile_expression(e)) for n, e in rules.items()]
        self.prepare_item = normalizer(self.option_bool("normalize"))

    def map(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        count = valid = 0
        reasons: dict[str, int] = {}
        for raw in items:
            count += 1
            item = self.prepare_item(raw)
            failed = [f"missing:{f}" for f in self.required if item.get(f) is None]
            failed += [
                f"type:{f}" for f, ok in self.types if item.get(f) is not None and not ok(item[f])
            ]
            for reason, rule in self.rules:
                try:
                    passed = rule.evaluate(item)
                except EvaluationError:
                    passed = False
                if not passed:
                    failed.append(reason)
            for reason in failed:
                reasons[reason] = reasons.get(reason, 0) + 1
            valid += not failed
        return {ITEMS: count, "valid": valid, "reasons": reasons}

    def combine(self, partials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        parts = list(partials)
        reasons: dict[str, int] = {}
        for p in parts:
            add_counts(reasons, p["reasons"])
        valid = sum(int(p["valid"]) for p in parts)
        return {ITEMS: total_items(parts), "valid": valid, "reasons": reasons}

    def finalize(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        items, valid = int(partial[ITEMS]), int(partial["valid"])
        reasons = sorted_dict(partial["reasons"])
        return {ITEMS: items, "valid": valid, "invalid": items - valid, "reasons": reasons}
