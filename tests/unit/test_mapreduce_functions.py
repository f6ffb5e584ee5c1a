"""Processing functions: map/combine/finalize equal one pass, in any partitioning
and merge order, exactly; partials stay small; options are checked up front."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celeryref.errors import InvalidArguments
from celeryref.mapreduce import generate, records
from celeryref.mapreduce.exact import Stats, from_fixed, to_fixed
from celeryref.mapreduce.functions import FUNCTIONS, Function, prepare
from celeryref.mapreduce.planning import plan

#: Generated items (deterministic): the same messy data the integration tier uses.
ITEMS = list(generate.make_items(2_000, seed=11))

OPTIONS: dict[str, dict[str, Any]] = {
    "validation": {"normalize": True, "rules": {"cheap": "amount < 20", "eu": "'eu' in region"}},
    "transformation": {"calculated": {"total": "amount * quantity", "tax": "amount * 0.2"}},
    "analysis": {"metric": "amount"},
    "aggregation": {"group_by": "category", "value": "amount * quantity"},
}


def roundtrip(partial: dict[str, Any]) -> dict[str, Any]:
    """What Postgres (jsonb) gives back: JSON text, parsed."""
    loaded: dict[str, Any] = json.loads(json.dumps(partial))
    return loaded


def distributed(
    function: Function, items: Sequence[Any], bounds: list[int], rng: random.Random
) -> dict[str, Any]:
    """Map each range, shuffle the partials, merge them in a random tree."""
    partials = [roundtrip(function.map(items[a:b])) for a, b in itertools.pairwise(bounds)]
    rng.shuffle(partials)
    while len(partials) > 1:
        i = rng.randrange(len(partials) - 1)
        k = rng.randint(2, min(4, len(partials) - i))
        partials[i : i + k] = [roundtrip(function.combine(partials[i : i + k]))]
    return function.finalize(partials[0] if partials else function.combine([]))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("partitions", [1, 2, 7, 64, 2000])
def test_partitioned_result_equals_the_single_pass(name: str, partitions: int) -> None:
    function = prepare(name, OPTIONS[name])
    ranges = plan(len(ITEMS), partitions=partitions)
    bounds = [0, *(p.end for p in ranges)]
    expected = function.run(ITEMS)
    for seed in range(3):
        assert distributed(function, ITEMS, bounds, random.Random(seed)) == expected


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(FUNCTIONS)),
    cuts=st.lists(st.integers(0, len(ITEMS)), max_size=12),
    seed=st.integers(0, 2**32),
)
def test_combine_is_associative_and_order_independent(
    name: str, cuts: list[int], seed: int
) -> None:
    function = prepare(name, OPTIONS[name])
    bounds = sorted({0, len(ITEMS), *cuts})
    assert distributed(function, ITEMS, bounds, random.Random(seed)) == function.run(ITEMS)


def test_combine_of_nothing_is_the_empty_result() -> None:
    for name in FUNCTIONS:
        function = prepare(name)
        assert function.finalize(function.combine([])) == function.run([])


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
numbers = st.lists(st.one_of(finite, st.integers(-(10**12), 10**12)), max_size=200)


@given(values=numbers, cuts=st.lists(st.integers(0, 200), max_size=6))
def test_stats_sum_is_the_correctly_rounded_exact_sum(values: list[float], cuts: list[int]) -> None:
    """Merged per-chunk sums equal math.fsum of all values (the exact sum, rounded once)."""
    bounds = sorted({0, len(values), *(c for c in cuts if c <= len(values))})
    merged = Stats()
    for a, b in itertools.pairwise(bounds):
        chunk = Stats()
        for v in values[a:b]:
            chunk.add(v)
        merged.merge(Stats.from_json(json.loads(json.dumps(chunk.to_json()))))
    summary = merged.summary()
    assert summary["count"] == len(values)
    assert summary["sum"] == math.fsum(values)
    if values:
        assert summary["avg"] == float(sum(Fraction(v) for v in values) / len(values))
        assert summary["min"] == min(values) and summary["max"] == max(values)


@given(value=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers()))
def test_fixed_point_is_lossless(value: float) -> None:
    assert Fraction(to_fixed(value), 2**1074) == Fraction(value)
    if isinstance(value, float):
        assert from_fixed(to_fixed(value)) == value


def test_float_sums_that_plain_addition_gets_wrong_are_exact() -> None:
    values = [1e16, 1.0, -1e16, 0.1, 0.2, 0.3]
    stats = Stats()
    for v in values:
        stats.add(v)
    assert sum(values) != math.fsum(values)
    assert stats.summary()["sum"] == math.fsum(values) == 1.6


def test_partials_stay_small_whatever_the_item_count() -> None:
    """Partials are aggregates: their size depends on groups, not on items."""
    many = list(generate.make_items(20_000, seed=5))
    for name in FUNCTIONS:
        function = prepare(name)
        small, large = function.map(many[:1000]), function.map(many)
        assert len(json.dumps(large)) < 2 * len(json.dumps(small)) + 1000, name
        assert len(json.dumps(large)) < 10_000, name


def test_validation_counts_each_reason_once_per_item() -> None:
    function = prepare(
        "validation",
        {
            "required": ["amount", "email"],
            "types": {"amount": "number", "email": "email"},
            "rules": {"positive": "amount > 0"},
        },
    )
    items = [
        {"amount": 3.5, "email": "a@b.co"},
        {"amount": "3.5", "email": "a@b.co"},
        {"email": "nope"},
        {"amount": -1, "email": None},
    ]
    assert function.run(items) == {
        "items": 4,
        "valid": 1,
        "invalid": 3,
        "reasons": {
            "missing:amount": 1,
            "missing:email": 1,
            "rule:positive": 3,
            "type:amount": 1,
            "type:email": 1,
        },
    }


def test_transformation_normalizes_and_reports_calculated_stats() -> None:
    items = [
        {"amount": "10.50", "quantity": "2", "email": " A@B.CO"},
        {"amount": 1.25, "quantity": 4, "email": "c@d.co"},
        {"amount": None, "quantity": 1},
    ]
    result = prepare("transformation").run(items)
    assert result["normalized"] == {"amount": 1, "email": 1, "quantity": 1}
    assert result["calculated"]["total"] == {
        "count": 2,
        "sum": 26.0,
        "avg": 13.0,
        "min": 5.0,
        "max": 21.0,
        "errors": 1,
    }


def test_analysis_puts_items_in_the_first_matching_category() -> None:
    function = prepare(
        "analysis",
        {
            "metric": "amount",
            "categories": [
                {"name": "big", "when": "amount >= 100"},
                {"name": "any", "when": "amount >= 0"},
            ],
        },
    )
    result = function.run([{"amount": 150}, {"amount": 50}, {"amount": 5}, {"amount": "x"}])
    assert {k: v["items"] for k, v in result["categories"].items()} == {
        "any": 2,
        "big": 1,
        "unclassified": 1,
    }
    assert result["categories"]["any"]["metric"]["sum"] == 55
    assert result["metric_errors"] == 1


def test_aggregation_groups_and_limits_the_number_of_groups() -> None:
    items = [
        {"region": r, "amount": a} for r, a in [("eu", 1.5), ("EU ", 2.5), ("us", 4), (None, 9)]
    ]
    result = prepare("aggregation", {"metrics": ["sum", "avg"]}).run(items)
    assert result["groups"] == {
        "eu": {"count": 2, "values": 2, "sum": 4.0, "avg": 2.0},
        "us": {"count": 1, "values": 1, "sum": 4, "avg": 4.0},
    }
    assert result["skipped"] == {"missing_group": 1, "invalid_value": 0}
    with pytest.raises(InvalidArguments, match="distinct values"):
        prepare("aggregation", {"group_by": "email", "max_groups": 5}).run(ITEMS)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("eval", {}),
        ("aggregation", {"unknown": 1}),
        ("aggregation", {"value": "__import__('os').system('id')"}),
        ("aggregation", {"metrics": ["median"]}),
        ("aggregation", {"max_groups": 0}),
        ("validation", {"types": {"amount": "decimal"}}),
        ("validation", {"rules": {"x": "amount.__class__"}}),
        ("transformation", {"calculated": {"t": "[x for x in amount]"}}),
        ("transformation", {"normalize": "yes"}),
        ("analysis", {"categories": [{"name": "a"}]}),
        ("analysis", {"default_category": ""}),
    ],
)
def test_bad_options_are_refused_before_any_work(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArguments):
        prepare(name, options)


def test_normalize_fixes_what_it_can_and_reports_it() -> None:
    item = {"category": " Books ", "amount": "12.50", "quantity": "3", "email": "X@Y.Z", "id": 1}
    normalized, changed = records.normalize(item)
    assert normalized == {
        "category": "books",
        "amount": 12.5,
        "quantity": 3,
        "email": "x@y.z",
        "id": 1,
    }
    assert set(changed) == {"category", "amount", "quantity", "email"}
    assert records.normalize(normalized) == (normalized, ())
    assert records.normalize({"amount": "n/a", "quantity": "²"})[1] == ()


def test_generated_items_are_deterministic_and_messy() -> None:
    assert list(generate.make_items(50, seed=3)) == list(generate.make_items(50, seed=3))
    assert list(generate.make_items(50, seed=3)) != list(generate.make_items(50, seed=4))
    invalid = prepare("validation").run(ITEMS)["invalid"]
    assert 0.05 * len(ITEMS) < invalid < 0.4 * len(ITEMS)


def test_a_job_with_bad_options_is_refused_before_anything_is_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celeryref.mapreduce import jobs, store

    def no_database(name: str) -> None:
        pytest.fail("the database was touched")

    monkeypatch.setattr(store, "get_dataset", no_database)
    with pytest.raises(InvalidArguments, match="attribute access"):
        jobs.start("any", "aggregation", {"value": "amount.__class__"})
    with pytest.raises(InvalidArguments, match="unknown function"):
        jobs.start("any", "os.system", {})
