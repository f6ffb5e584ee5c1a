"""Conditional processing: which follow-up tasks the data calls for.

Follow-ups are chosen from :data:`FOLLOW_UPS` only. A message may *restrict*
them by name (``follow_ups``), and every name is checked against the allowlist;
it can never name a task to run. :func:`decide` is pure: it turns counts, an
analysis (:func:`celeryref.domain.data_processing.analyze`) and :class:`Thresholds` into the
follow-ups that apply, each with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from celeryref import queues
from celeryref.errors import InvalidArguments

_T = queues.TASK_PACKAGE

#: Follow-up name -> the Celery task it dispatches. Nothing else is ever dispatched.
FOLLOW_UPS = MappingProxyType(
    {
        "report": f"{_T}.cpu_intensive.reports.generate_report",
        "quality_alert": f"{_T}.io_intensive.email.send_notification",
        "high_value_alert": f"{_T}.io_intensive.email.send_notification",
    }
)


@dataclass(frozen=True)
class Thresholds:
    """When each follow-up applies."""

    #: ``quality_alert`` when the share of invalid records exceeds this (0..1).
    max_invalid_ratio: float = 0.1
    #: ``report`` when at least this many records are valid.
    min_records_for_report: int = 1
    #: ``high_value_alert`` when the largest value reaches this; ``None``: never.
    high_value: float | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Thresholds:
        """Thresholds from JSON; unknown keys and non-numbers are refused."""
        raw = dict(raw or {})
        unknown = set(raw) - {"max_invalid_ratio", "min_records_for_report", "high_value"}
        if unknown:
            raise InvalidArguments(f"unknown thresholds: {sorted(unknown)}")
        for key, value in raw.items():
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not (ok and math.isfinite(value)) and not (key == "high_value" and value is None):
                raise InvalidArguments(f"threshold {key} must be a finite number, got {value!r}")
        thresholds = cls(**raw)
        if not 0 <= thresholds.max_invalid_ratio <= 1:
            raise InvalidArguments("max_invalid_ratio must be in 0..1")
        return thresholds


def enabled(names: Iterable[object] | None) -> frozenset[str]:
    """The follow-ups a caller allows (default: all); names outside the allowlist fail."""
    if names is None:
        return frozenset(FOLLOW_UPS)
    chosen = list(names)
    unknown = [n for n in chosen if not isinstance(n, str) or n not in FOLLOW_UPS]
    if unknown:
        raise InvalidArguments(f"unknown follow-ups {unknown}; allowed: {sorted(FOLLOW_UPS)}")
    return frozenset(str(n) for n in chosen)


def decide(
    valid: int,
    invalid: int,
    analysis: Mapping[str, Any],
    thresholds: Thresholds,
    allowed: frozenset[str] = frozenset(FOLLOW_UPS),
) -> list[tuple[str, str]]:
    """``[(follow_up, reason)]`` for every condition that holds, in allowlist order."""
    total = valid + invalid
    ratio = invalid / total if total else 0.0
    decisions = []
    if ratio > thresholds.max_invalid_ratio:
        decisions.append(
            (
                "quality_alert",
                f"{invalid} of {total} records invalid ({ratio:.0%}"
                f" > {thresholds.max_invalid_ratio:.0%})",
            )
        )
    if valid >= thresholds.min_records_for_report:
        decisions.append(
            ("report", f"{valid} valid records (>= {thresholds.min_records_for_report})")
        )
    highest, limit = analysis.get("max"), thresholds.high_value
    if limit is not None and highest is not None and highest >= limit:
        decisions.append(("high_value_alert", f"max value {highest} >= {limit}"))
    order = list(FOLLOW_UPS)
    decisions.sort(key=lambda d: order.index(d[0]))
    return [d for d in decisions if d[0] in allowed]
