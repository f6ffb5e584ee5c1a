"""Exact, order-independent sums of floats, and the summary statistics built on them.

Floating-point addition is not associative: adding the same numbers in a different
order, or per partition and then across partitions, can change the last bits of
the sum. Every finite double is ``m * 2**e`` with ``e >= -1074``, so it is an
integer multiple of ``2**-1074``: :func:`to_fixed` turns it into that integer
without loss, integers add exactly in any order, and :func:`from_fixed` rounds the
exact total to the nearest double once, at the end. The result is the correctly
rounded sum (what :func:`math.fsum` returns for all the values at once), however
the values were split and merged.
"""

from __future__ import annotations

from typing import Any

#: Fixed-point scale: values are stored as integers in units of ``2**-SCALE_BITS``,
#: the smallest positive (subnormal) double.
SCALE_BITS = 1074


def to_fixed(value: int | float) -> int:
    """``value`` as an exact integer count of ``2**-SCALE_BITS`` units."""
    if isinstance(value, int):
        return value << SCALE_BITS
    numerator, denominator = value.as_integer_ratio()  # denominator == 2**k, k <= 1074
    return numerator << (SCALE_BITS + 1 - denominator.bit_length())


def from_fixed(total: int, divisor: int = 1) -> float:
    """``total / divisor`` units as the nearest double (int division rounds correctly)."""
    return total / (divisor << SCALE_BITS)


class Stats:
    """Count, exact sum, mean, min and max of numbers; merges exactly in any order."""

    __slots__ = ("count", "high", "integral", "low", "total")

    def __init__(self) -> None:
        self.count = 0
        #: Exact sum in fixed-point units (see :func:`to_fixed`).
        self.total = 0
        self.low: int | float | None = None
        self.high: int | float | None = None
        #: Every value so far was an ``int``: the sum is reported as an ``int``.
        self.integral = True

    def add(self, value: int | float) -> None:
        """Count ``value`` (a finite ``int`` or ``float``; callers check)."""
        self.count += 1
        self.total += to_fixed(value)
        if isinstance(value, float):
            self.integral = False
        if self.low is None or value < self.low:
            self.low = value
        if self.high is None or value > self.high:
            self.high = value

    def merge(self, other: Stats) -> None:
        """Add ``other``'s values to these, as if they had been added one by one."""
        self.count += other.count
        self.total += other.total
        self.integral = self.integral and other.integral
        for bound in (other.low, other.high):
            if bound is not None:
                if self.low is None or bound < self.low:
                    self.low = bound
                if self.high is None or bound > self.high:
                    self.high = bound

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe partial; the exact sum travels as a hex string."""
        return {
            "count": self.count,
            "total": format(self.total, "x"),
            "min": self.low,
            "max": self.high,
            "integral": self.integral,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        stats = cls()
        stats.count = int(data["count"])
        stats.total = int(data["total"], 16)
        stats.low, stats.high = data["min"], data["max"]
        stats.integral = bool(data["integral"])
        return stats

    def summary(self) -> dict[str, Any]:
        """``count``, ``sum``, ``avg``, ``min``, ``max`` (``None`` when empty).

        Sums of integers are integers; otherwise every number is a float, so the
        summary does not depend on which of ``1`` and ``1.0`` was seen first.
        """
        if self.count == 0:
            return {"count": 0, "sum": 0, "avg": None, "min": None, "max": None}
        if self.integral:
            total: int | float = self.total >> SCALE_BITS
            low, high = self.low, self.high
        else:
            total = from_fixed(self.total)
            low = None if self.low is None else float(self.low)
            high = None if self.high is None else float(self.high)
        return {
            "count": self.count,
            "sum": total,
            "avg": from_fixed(self.total, self.count),
            "min": low,
            "max": high,
        }
