"""Split ``n`` dense item indexes into half-open ranges ``[start, end)``.

Half-open ranges never share a boundary: partition ``i`` ends where ``i + 1``
starts, so every index in ``0..n-1`` belongs to exactly one partition (the source
sketch used inclusive ``BETWEEN`` bounds and processed every boundary item twice).
Sizes differ by at most one, larger partitions first.
"""

from __future__ import annotations

from dataclasses import dataclass

from celeryref.errors import InvalidArguments

#: Items per partition when the caller does not choose: large enough that the
#: per-task overhead (broker round trip, job lookup, partial upsert, ~10 ms) is
#: noise next to the work (~0.5 s), small enough that a retry repeats little and
#: that many workers share a dataset evenly.
DEFAULT_PARTITION_SIZE = 50_000
#: Upper bound of partitions per job: the chord header and the partials table
#: stay small, and a typo cannot flood the broker.
MAX_PARTITIONS = 10_000


@dataclass(frozen=True)
class Partition:
    """Items ``start <= item_index < end`` of a dataset, the ``index``-th range."""

    index: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArguments(f"{name} must be a positive integer, got {value!r}")
    return value


def plan(
    n: int, partitions: int | None = None, partition_size: int | None = None
) -> list[Partition]:
    """Ranges covering ``0..n-1`` exactly once, in order.

    Give ``partitions`` (how many ranges) or ``partition_size`` (items per range),
    not both; neither means :data:`DEFAULT_PARTITION_SIZE`. Never returns an empty
    range: ``n == 0`` plans no partition, and ``n < partitions`` plans ``n``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidArguments(f"n must be a non-negative integer, got {n!r}")
    if partitions is not None and partition_size is not None:
        raise InvalidArguments("give partitions or partition_size, not both")
    if partitions is not None:
        count = _positive_int(partitions, "partitions")
    else:
        size = _positive_int(partition_size or DEFAULT_PARTITION_SIZE, "partition_size")
        count = -(-n // size)  # ceil
    count = min(count, n)
    if count > MAX_PARTITIONS:
        raise InvalidArguments(f"{count} partitions exceed the limit of {MAX_PARTITIONS}")
    if count == 0:
        return []
    base, larger = divmod(n, count)
    ranges: list[Partition] = []
    start = 0
    for index in range(count):
        end = start + base + (1 if index < larger else 0)
        ranges.append(Partition(index, start, end))
        start = end
    return ranges
