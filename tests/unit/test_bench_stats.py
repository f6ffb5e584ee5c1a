"""The benchmark's pure parts: percentiles, the head-of-line mix, idle time."""

from __future__ import annotations

import pytest

from bench import stats


def test_percentile_interpolates_like_numpy() -> None:
    """Linear interpolation between closest ranks, as numpy's default."""
    values = [4.0, 1.0, 3.0, 2.0]
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile(values, 100) == 4.0
    assert stats.percentile(values, 50) == 2.5
    assert stats.percentile(list(map(float, range(1, 101))), 99) == pytest.approx(99.01)


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_summarize_ms_converts_seconds() -> None:
    summary = stats.summarize_ms([0.001, 0.002, 0.003])
    assert summary["p50_ms"] == 2.0
    assert summary["n"] == 3
    assert stats.summarize_ms([]) == {"n": 0}


def test_split_counts_sums_to_total() -> None:
    """Largest remainder: counts add up and follow the shares."""
    assert stats.split_counts(100, [0.01, 0.29, 0.20, 0.50]) == [1, 29, 20, 50]
    counts = stats.split_counts(7, [0.01, 0.29, 0.20, 0.50])
    assert sum(counts) == 7
    assert counts[3] >= counts[1] >= counts[0]


def test_hol_mix_scales_the_issue_distribution() -> None:
    """1% 10 s, 29% 5 s, 20% 3 s, 50% 1 s, times the scale, plus the short tasks."""
    mix = stats.hol_mix(100, 50, scale=0.1, short_seconds=0.01)
    assert len(mix) == 150
    assert mix.count(0.01) == 50
    assert sorted({round(d, 6) for d in mix if d != 0.01}) == [0.1, 0.3, 0.5, 1.0]
    assert [round(d, 6) for d in mix].count(1.0) == 1
    assert [round(d, 6) for d in mix].count(0.5) == 29
    assert mix == stats.hol_mix(100, 50, scale=0.1, short_seconds=0.01)  # seeded
    assert mix != sorted(mix)  # shuffled


def test_idle_fraction() -> None:
    """Two processes, each busy half of a 2 s window: half idle."""
    spans = [(0.0, 1.0), (1.0, 2.0)]
    assert stats.idle_fraction(spans, processes=2, start=0.0) == pytest.approx(0.5)
    assert stats.idle_fraction(spans, processes=1, start=0.0) == pytest.approx(0.0)
    assert stats.idle_fraction([], processes=2, start=0.0) == 0.0
