"""Pure helpers of the benchmark: percentiles, the head-of-line mix, idle time.

Nothing here touches a broker; ``tests/unit/test_bench_stats.py`` covers it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

#: The head-of-line mix of issue 8 before scaling: (seconds, share of long tasks).
LONG_MIX: tuple[tuple[float, float], ...] = ((10.0, 0.01), (5.0, 0.29), (3.0, 0.20), (1.0, 0.50))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linear between closest ranks.

    Same as ``numpy.percentile(values, q)`` (its default "linear" method).
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max and mean of ``seconds``, in milliseconds, plus the count ``n``."""
    if not seconds:
        return {"n": 0}
    ms = [s * 1000 for s in seconds]
    out = {f"p{q}_ms": round(percentile(ms, q), 2) for q in (50, 95, 99)}
    out.update(max_ms=round(max(ms), 2), mean_ms=round(sum(ms) / len(ms), 2), n=len(ms))
    return out


def split_counts(total: int, shares: Sequence[float]) -> list[int]:
    """Split ``total`` into integer counts proportional to ``shares`` (largest remainder)."""
    raw = [total * s / sum(shares) for s in shares]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def hol_mix(long_count: int, short_count: int, scale: float, short_seconds: float,
            seed: int = 8) -> list[float]:  # fmt: skip
    """Shuffled task durations (seconds): ``long_count`` long tasks distributed as
    :data:`LONG_MIX` times ``scale``, and ``short_count`` tasks of ``short_seconds``."""
    durations = [short_seconds] * short_count
    counts = split_counts(long_count, [share for _, share in LONG_MIX])
    for (seconds, _), count in zip(LONG_MIX, counts, strict=True):
        durations += [seconds * scale] * count
    random.Random(seed).shuffle(durations)  # noqa: S311 - a benchmark mix, not a secret
    return durations


def idle_fraction(spans: Sequence[tuple[float, float]], processes: int, start: float) -> float:
    """Share of ``processes`` x (``start`` .. last end) in which no task ran.

    ``spans`` are ``(start, end)`` seconds of every task; 0 = always busy.
    """
    if not spans or processes < 1:
        return 0.0
    window = max(end for _, end in spans) - start
    busy = sum(end - begin for begin, end in spans)
    return max(0.0, 1 - busy / (processes * window)) if window > 0 else 0.0
