"""Latency histograms with HdrHistogram's bucketing: 3 significant digits.

Why not keep every sample: a throughput run records millions of replies per
worker, and the percentiles must be merged across worker processes (and,
later, across swarm replicas on other hosts).  A log-bucketed histogram has a
fixed, small size, records a value in a few integer operations, and merges by
adding bucket counts, so the merged percentiles are exactly those of one
histogram that had seen every sample.

Layout (HdrHistogram with lowest value 1, 3 significant digits): values are
non-negative integers (the swarm records microseconds).  Values below 2048
have a bucket each.  Above that, bucket ``b`` (b >= 1) covers
[1024 << b, 2048 << b) in 1024 steps of width ``1 << b``: a step is never
wider than 1/1024 of the values it holds, so any value reported for a bucket
is within 0.1 % (3 significant digits) of every sample in it.

    index(v) = v                          if v < 2048
             = (b << 10) + (v >> b)       with b = v.bit_length() - 11

A value below 0 cannot be a latency (both ends are read from one monotonic
clock): it is counted as 0, and in ``clamped``, so that a clock that ever
misbehaved shows in the results instead of vanishing.  fastpath.c keeps
this layout and this rule in C; a unit test holds the two equal.

Percentiles use the nearest-rank definition (the smallest recorded value with
at least p % of the samples at or below it) and report the highest value
equivalent to that sample's bucket, clipped to the exact maximum, as
HdrHistogram does.  Count, min, max and the sum (hence the mean) are exact.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

SIGNIFICANT_DIGITS = 3
SUB_BITS = 11  # 2048 sub-buckets: the power of two at or above 2 * 10**3
HALF_BITS = SUB_BITS - 1
_MAX_BITS = 63  # values up to 2**63 - 1 (in microseconds: 292,000 years)
SIZE = ((_MAX_BITS - SUB_BITS + 1) << HALF_BITS) + (1 << HALF_BITS)
_NONE = 1 << 63  # ``low`` of an empty histogram: above any value it can hold

# The percentiles every summary reports, with the names of their fields.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9),
)


def index_of(value: int) -> int:
    """The bucket index a (non-negative integer) value is counted in: the
    only place it is computed in Python (fastpath.c's bucket_of in C)."""
    shift = value.bit_length() - SUB_BITS
    if shift <= 0:
        return value
    return (shift << HALF_BITS) + (value >> shift)


def lowest_equivalent(index: int) -> int:
    """The smallest value that falls into bucket ``index``."""
    if index < (1 << SUB_BITS):
        return index
    shift = (index >> HALF_BITS) - 1
    return (index - (shift << HALF_BITS)) << shift


def highest_equivalent(index: int) -> int:
    """The largest value that falls into bucket ``index``."""
    if index < (1 << SUB_BITS):
        return index
    shift = (index >> HALF_BITS) - 1
    return lowest_equivalent(index) + (1 << shift) - 1


def rank(percentile: float, total: int) -> int:
    """Nearest rank (1-based) of a percentile among ``total`` samples."""
    # The small epsilon keeps 99.0 % of 100 at rank 99 despite float error.
    return min(total, max(1, math.ceil(percentile / 100.0 * total - 1e-9)))


class Histogram:
    """Counts of integer values in HdrHistogram buckets, mergeable by addition."""

    __slots__ = ("counts", "total", "sum", "low", "max", "clamped")

    def __init__(self) -> None:
        # A flat list is the fastest thing CPython can index and add to; it
        # costs SIZE (about 54,000) slots once per histogram, never per sample.
        self.counts: list[int] = [0] * SIZE
        self.total = 0
        self.sum = 0
        self.low = _NONE  # the smallest value, without a test for "empty" per sample
        self.max = 0
        self.clamped = 0  # values below 0, counted as 0

    @property
    def min(self) -> int:
        return self.low if self.total else 0

    def record(self, value: int, n: int = 1) -> None:
        """Count ``value`` ``n`` times (below 0: as 0, and in ``clamped``)."""
        if value < 0:
            value = 0
            self.clamped += n
        self.counts[index_of(value)] += n
        if value < self.low:
            self.low = value
        if value > self.max:
            self.max = value
        self.total += n
        self.sum += value * n

    def merge(self, other: "Histogram") -> "Histogram":
        """Add every count of ``other`` into this histogram; returns self."""
        if other.total == 0:
            return self
        counts = self.counts
        for index, n in other.buckets():
            counts[index] += n
        self.low = min(self.low, other.low)
        self.max = max(self.max, other.max)
        self.total += other.total
        self.sum += other.sum
        self.clamped += other.clamped
        return self

    def buckets(self) -> Iterator[tuple[int, int]]:
        """(index, count) of every non-empty bucket, in value order."""
        return ((i, n) for i, n in enumerate(self.counts) if n)

    def percentile(self, percentile: float) -> int:
        """The value at ``percentile`` (0..100); 0 for an empty histogram."""
        if self.total == 0:
            return 0
        if percentile <= 0:
            return self.min
        want = rank(percentile, self.total)
        seen = 0
        for index, n in self.buckets():
            seen += n
            if seen >= want:
                return max(self.min, min(self.max, highest_equivalent(index)))
        return self.max  # unreachable: the counts add up to total

    @property
    def mean(self) -> float:
        return self.sum / self.total if self.total else 0.0

    def summary(self, unit: str = "us") -> dict[str, Any]:
        """count, min, mean, p50, p90, p99, p99.9, max; names end in ``_unit``."""
        out: dict[str, Any] = {"count": self.total, f"min_{unit}": self.min,
                               f"mean_{unit}": round(self.mean, 1)}
        for name, p in PERCENTILES:
            out[f"{name}_{unit}"] = self.percentile(p)
        out[f"max_{unit}"] = self.max
        return out

    # -- serialisation: results.json and the worker-to-parent pipe ---------
    def to_json(self, unit: str = "us") -> dict[str, Any]:
        """Self-describing and mergeable without this module: each bucket is
        [lowest value in it, count]; buckets of equal lowest value add up."""
        return {
            "unit": unit,
            "significant_digits": SIGNIFICANT_DIGITS,
            "count": self.total,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "buckets": [[lowest_equivalent(i), n] for i, n in self.buckets()],
            "clamped": self.clamped,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Histogram":
        hist = cls()
        for low, n in data["buckets"]:
            hist.counts[index_of(int(low))] += int(n)
        hist.total = int(data["count"])
        hist.sum = int(data["sum"])
        hist.low = int(data["min"]) if hist.total else _NONE
        hist.max = int(data["max"])
        hist.clamped = int(data.get("clamped", 0))  # absent before it was counted
        return hist

    @classmethod
    def from_counts(cls, counts: Iterable[int], total: int, total_sum: int, low: int, high: int,
                    clamped: int) -> "Histogram":
        """A histogram kept elsewhere in this layout (fastpath.c's), as one of ours."""
        hist = cls()
        hist.counts = list(counts)
        if len(hist.counts) != SIZE:
            raise ValueError(f"{len(hist.counts)} buckets, not {SIZE}: another layout")
        hist.total, hist.sum, hist.max, hist.clamped = total, total_sum, high, clamped
        hist.low = low if total else _NONE
        return hist

    @classmethod
    def of(cls, values: Iterable[int]) -> "Histogram":
        hist = cls()
        for v in values:
            hist.record(v)
        return hist
