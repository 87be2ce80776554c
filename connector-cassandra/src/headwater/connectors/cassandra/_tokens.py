"""Token ranges: the partitioner's ring cut into contiguous ranges, sized from table estimates.

The whole ring of the partitioner, ``(minimum, maximum]``, is cut into ``n`` ranges of equal width,
so no range wraps around the end of the ring and every token falls in exactly one range. The
first range also takes the minimum token itself (``>=``): Murmur3 never gives a key the minimum
token, but RandomPartitioner can give a key token 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PARTITIONERS", "Ring", "SizeEstimate", "TokenRange", "split_count", "token_ranges"]


@dataclass(frozen=True, slots=True)
class Ring:
    """The token space of a partitioner: tokens ``minimum..maximum`` (both inclusive)."""

    name: str
    minimum: int
    maximum: int


PARTITIONERS = {
    "org.apache.cassandra.dht.Murmur3Partitioner": Ring("Murmur3Partitioner", -(2**63), 2**63 - 1),
    "org.apache.cassandra.dht.RandomPartitioner": Ring("RandomPartitioner", 0, 2**127),
}
"""The partitioners whose rings can be split, by the class name the cluster reports."""


@dataclass(frozen=True, slots=True)
class TokenRange:
    """Tokens ``start < token <= end`` (``start <= token`` when ``start_inclusive``)."""

    start: int
    end: int
    start_inclusive: bool = False


def token_ranges(ring: Ring, count: int) -> list[TokenRange]:
    """``ring`` cut into ``count`` contiguous ranges of (nearly) equal width, in ring order."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    width = ring.maximum - ring.minimum
    bounds = [ring.minimum + width * i // count for i in range(count + 1)]
    return [
        TokenRange(bounds[i], bounds[i + 1], start_inclusive=i == 0)
        for i in range(count)
        if bounds[i] < bounds[i + 1]
    ]


@dataclass(frozen=True, slots=True)
class SizeEstimate:
    """One row of ``system.size_estimates``: a token range of the node and its table data."""

    range_start: int
    range_end: int
    partitions_count: int
    mean_partition_size: int


def split_count(
    ring: Ring, estimates: Iterable[SizeEstimate], split_size_bytes: int, minimum: int
) -> int:
    """How many splits: the estimated table size over ``split_size_bytes``, at least ``minimum``.

    A node estimates only its own ranges; the total is scaled up by the share of the ring they
    cover. No estimates (an empty table, or a server without ``system.size_estimates``): ``minimum``.

    Args:
        ring: the partitioner's token space.
        estimates: the rows of ``system.size_estimates`` for the table.
        split_size_bytes: the data one split should hold.
        minimum: the least number of splits (the source's parallelism, so every reader works).
    """
    width = ring.maximum - ring.minimum
    covered = 0
    size = 0
    for row in estimates:
        span = row.range_end - row.range_start
        covered += span if span > 0 else span + width  # a range wrapping around the ring's end
        size += max(0, row.partitions_count) * max(0, row.mean_partition_size)
    if covered <= 0 or size <= 0:
        return minimum
    total = size * width / min(covered, width)
    return max(minimum, math.ceil(total / split_size_bytes))
