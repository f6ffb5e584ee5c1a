"""Plain functions over records (dicts): validate, clean, transform, analyze, render.

Used by the ``data_processing`` workflow's steps and by ``process_large_dataset``;
no broker, no database: unit-tested directly.

A record is a JSON object with at least ``id``, ``name`` and a finite number
``value``; ``category`` (text) is optional. Validation never raises for a bad
record: it sorts records into valid ones and rejected ones with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Fields every record must have.
REQUIRED_FIELDS = ("id", "name", "value")
#: Category of records that name none.
DEFAULT_CATEGORY = "uncategorized"


def record_problem(record: object) -> str | None:
    """Why ``record`` is unusable, or ``None`` when it is valid."""
    if not isinstance(record, Mapping):
        return f"not an object: {type(record).__name__}"
    missing = [f for f in REQUIRED_FIELDS if record.get(f) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    value = record["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"value must be a finite number, got {value!r}"
    if not isinstance(record["name"], str) or not record["name"].strip():
        return "name must be non-empty text"
    category = record.get("category")
    if category is not None and not isinstance(category, str):
        return "category must be text"
    return None


def validate(records: Iterable[object]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(valid, rejected)``; each rejected entry is ``{"index", "reason"}``."""
    valid: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        problem = record_problem(record)
        if problem is None:
            valid.append(dict(record))  # type: ignore[call-overload]
        else:
            rejected.append({"index": index, "reason": problem})
    return valid, rejected


def clean_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Whitespace collapsed in text fields, category lower-cased (default when absent)."""
    cleaned = {k: " ".join(v.split()) if isinstance(v, str) else v for k, v in record.items()}
    category = cleaned.get("category") or DEFAULT_CATEGORY
    cleaned["category"] = category.lower()
    return cleaned


def clean(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Cleaned records, the first of each ``id`` kept (later duplicates dropped)."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for record in records:
        key = repr(record["id"])
        if key not in seen:
            seen.add(key)
            out.append(clean_record(record))
    return out


def transform(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records with ``value`` as a float rounded to 4 places and the calculated field
    ``normalized``: the value scaled to 0..1 over the batch (0.0 when all are equal)."""
    rows = [dict(r, value=round(float(r["value"]), 4)) for r in records]
    if not rows:
        return rows
    low = min(r["value"] for r in rows)
    span = max(r["value"] for r in rows) - low
    for row in rows:
        row["normalized"] = round((row["value"] - low) / span, 4) if span else 0.0
    return rows


@dataclass
class Analysis:
    """Streaming statistics of ``value`` overall and per category (Welford's mean/variance)."""

    count: int = 0
    total: float = 0.0
    mean: float = 0.0
    m2: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    categories: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, record: Mapping[str, Any]) -> None:
        value = float(record["value"])
        self.count += 1
        self.total += value
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)
        self.low, self.high = min(self.low, value), max(self.high, value)
        category = str(record.get("category") or DEFAULT_CATEGORY)
        bucket = self.categories.setdefault(category, {"count": 0, "sum": 0.0})
        bucket["count"] += 1
        bucket["sum"] += value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; ``None`` statistics when no record was added."""
        empty = self.count == 0
        return {
            "count": self.count,
            "sum": round(self.total, 6),
            "mean": None if empty else round(self.mean, 6),
            "stdev": None if empty else round(math.sqrt(self.m2 / self.count), 6),
            "min": None if empty else self.low,
            "max": None if empty else self.high,
            "categories": {
                name: {"count": int(b["count"]), "sum": round(b["sum"], 6)}
                for name, b in sorted(self.categories.items())
            },
        }


def analyze(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """:class:`Analysis` of ``records`` as a dict."""
    analysis = Analysis()
    for record in records:
        analysis.add(record)
    return analysis.to_dict()


def render_report(title: str, analysis: Mapping[str, Any], notes: Iterable[str] = ()) -> str:
    """A plain-text (Markdown) report of an :func:`analyze` result."""
    lines = [f"# {title}", ""]
    for key in ("count", "sum", "mean", "stdev", "min", "max"):
        lines.append(f"- {key}: {analysis.get(key)}")
    categories = analysis.get("categories") or {}
    if categories:
        lines += ["", "| category | count | sum |", "|---|---:|---:|"]
        lines += [f"| {name} | {c['count']} | {c['sum']} |" for name, c in categories.items()]
    notes = list(notes)
    if notes:
        lines += ["", *[f"> {note}" for note in notes]]
    return "\n".join(lines) + "\n"
