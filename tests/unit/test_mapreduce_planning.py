"""Partition planning: half-open ranges that cover 0..n-1 exactly once."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celeryref.errors import InvalidArguments
from celeryref.mapreduce.planning import DEFAULT_PARTITION_SIZE, MAX_PARTITIONS, Partition, plan


def assert_exact_cover(n: int, ranges: list[Partition]) -> None:
    covered = [i for p in ranges for i in range(p.start, p.end)]
    assert covered == list(range(n)), "every index once, in order"
    assert all(p.size > 0 for p in ranges), "no empty partition"
    assert [p.index for p in ranges] == list(range(len(ranges)))
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges)), "no gap, no overlap"
    if ranges:
        sizes = [p.size for p in ranges]
        assert max(sizes) - min(sizes) <= 1, "balanced"


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10, 99, 100, 101, 1000, 3001])
@pytest.mark.parametrize("partitions", [1, 2, 3, 7, 8, 16, 100, 1000])
def test_partitions_cover_every_index_exactly_once(n: int, partitions: int) -> None:
    ranges = plan(n, partitions=partitions)
    assert_exact_cover(n, ranges)
    assert len(ranges) == min(n, partitions)


@given(n=st.integers(0, 50_000), partitions=st.integers(1, 500))
def test_any_partition_count_covers_exactly_once(n: int, partitions: int) -> None:
    assert_exact_cover(n, plan(n, partitions=partitions))


@given(n=st.integers(0, 200_000), size=st.integers(20, 100_000))
def test_any_partition_size_covers_exactly_once(n: int, size: int) -> None:
    ranges = plan(n, partition_size=size)
    assert_exact_cover(n, ranges)
    assert all(p.size <= size for p in ranges)
    assert len(ranges) == -(-n // size)


def test_the_plan_by_size_is_reproducible_from_its_partition_count() -> None:
    """Map tasks re-plan with the stored partition count and must get the same ranges."""
    for n, size in [(1_000_000, 50_000), (3001, 700), (10, 3), (999_999, 50_000)]:
        by_size = plan(n, partition_size=size)
        assert plan(n, partitions=len(by_size)) == by_size


def test_defaults_edge_cases_and_bad_input() -> None:
    assert plan(7, partition_size=100) == [Partition(0, 0, 7)]
    assert plan(0) == []
    assert plan(5, partitions=8) == [Partition(i, i, i + 1) for i in range(5)]
    assert len(plan(DEFAULT_PARTITION_SIZE * 3 + 1)) == 4
    assert plan(10, partitions=3) == [Partition(0, 0, 4), Partition(1, 4, 7), Partition(2, 7, 10)]
    for bad in [
        {"n": -1},
        {"n": 1.5},
        {"n": True},
        {"n": 10, "partitions": 0},
        {"n": 10, "partition_size": -5},
        {"n": 10, "partitions": 2, "partition_size": 5},
        {"n": MAX_PARTITIONS + 1, "partition_size": 1},
    ]:
        with pytest.raises(InvalidArguments):
            plan(**bad)  # type: ignore[arg-type]
