"""The swarm's histograms: HdrHistogram bucketing to 3 significant digits,
percentiles checked against exact sorted values, merges against one
histogram that saw every sample."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ioschema.hist import (
    PERCENTILES, SIZE, Histogram, highest_equivalent, index_of, lowest_equivalent, rank,
)

values = st.integers(min_value=0, max_value=10**12)
samples = st.lists(values, min_size=1, max_size=400)
percentiles = st.sampled_from([0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]) | \
    st.floats(min_value=0.0, max_value=100.0)


def exact(sorted_values: list[int], percentile: float) -> int:
    if percentile <= 0:
        return sorted_values[0]
    return sorted_values[rank(percentile, len(sorted_values)) - 1]


@given(values)
def test_a_bucket_holds_its_value_within_three_significant_digits(value: int) -> None:
    i = index_of(value)
    assert 0 <= i < SIZE
    low, high = lowest_equivalent(i), highest_equivalent(i)
    assert low <= value <= high
    assert high - low < max(1, value / 1000)
    assert index_of(low) == i == index_of(high)


def test_buckets_are_contiguous_across_the_first_boundaries() -> None:
    for i in range(1, 6000):
        assert lowest_equivalent(i) == highest_equivalent(i - 1) + 1
    assert index_of(2**63 - 1) == SIZE - 1


def test_small_values_are_exact() -> None:
    h = Histogram.of(range(2048))
    assert h.percentile(50) == 1023
    assert h.percentile(100) == 2047
    assert h.min == 0 and h.max == 2047


@given(samples, percentiles)
def test_percentiles_match_exact_values_to_three_significant_digits(data: list[int], p: float) -> None:
    h = Histogram.of(data)
    want = exact(sorted(data), p)
    got = h.percentile(p)
    assert want <= got <= want + want / 1000, (p, want, got)


@given(samples)
def test_count_min_max_mean_are_exact(data: list[int]) -> None:
    h = Histogram.of(data)
    summary = h.summary("us")
    assert summary["count"] == len(data)
    assert summary["min_us"] == min(data)
    assert summary["max_us"] == max(data)
    assert abs(summary["mean_us"] - sum(data) / len(data)) <= 0.05 + 1e-9 * sum(data) / len(data)
    assert [k for k in summary] == ["count", "min_us", "mean_us"] + \
        [f"{name}_us" for name, _ in PERCENTILES] + ["max_us"]


@settings(max_examples=60)
@given(st.lists(st.lists(values, max_size=100), min_size=1, max_size=5))
def test_merge_equals_one_histogram_of_everything(parts: list[list[int]]) -> None:
    merged = Histogram()
    for part in parts:
        merged.merge(Histogram.of(part))
    whole = Histogram.of(v for part in parts for v in part)
    assert merged.counts == whole.counts
    assert (merged.total, merged.sum, merged.min, merged.max) == (whole.total, whole.sum, whole.min, whole.max)


@settings(max_examples=60)
@given(samples, st.integers(min_value=1, max_value=50))
def test_weighted_record_is_repeated_record(data: list[int], n: int) -> None:
    weighted = Histogram()
    repeated = Histogram()
    for v in data:
        weighted.record(v, n)
        for _ in range(n):
            repeated.record(v)
    assert weighted.counts == repeated.counts and weighted.sum == repeated.sum


@settings(max_examples=60)
@given(samples)
def test_json_round_trip_through_the_pipe(data: list[int]) -> None:
    h = Histogram.of(data)
    back = Histogram.from_json(json.loads(json.dumps(h.to_json())))
    assert back.counts == h.counts
    assert back.summary() == h.summary()


def test_json_buckets_merge_by_their_lowest_value() -> None:
    """A reader without this module merges results by adding counts of equal
    bucket keys; the keys are the buckets' lowest values."""
    a, b = Histogram.of([5, 3000, 3001]), Histogram.of([3000, 10**6])
    counts: dict[int, int] = {}
    for doc in (a.to_json(), b.to_json()):
        for low, n in doc["buckets"]:
            counts[low] = counts.get(low, 0) + n
    assert counts == {5: 1, 3000: 3, 999_936: 1}


def test_empty_and_negative() -> None:
    h = Histogram()
    assert h.summary()["count"] == 0 and h.percentile(99) == 0 and h.mean == 0.0
    h.record(-5)  # a clock that stepped back is counted as zero, not lost, and said
    assert h.min == 0 and h.total == 1 and h.clamped == 1
    assert Histogram().merge(h).clamped == 1 and Histogram().merge(h).total == 1
    assert Histogram.from_json(h.to_json()).clamped == 1
    old = h.to_json()
    del old["clamped"]  # results written before clamps were counted
    assert Histogram.from_json(old).clamped == 0
