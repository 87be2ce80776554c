"""Pure logic without a server: token ranges, split sizing, options, statements, serializers."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from headwater.connectors.cassandra import (
    CassandraConnectionOptions,
    CassandraSinkOptions,
    CassandraSourceOptions,
    CassandraSplit,
    WriteKind,
)
from headwater.connectors.cassandra._sink import COMMIT_SERIALIZER, Commit
from headwater.connectors.cassandra._source import ENUMERATOR_SERIALIZER, SPLIT_SERIALIZER
from headwater.connectors.cassandra._statements import ENTRY_SERIALIZER, Entry, sink_cql
from headwater.connectors.cassandra._tokens import (
    PARTITIONERS,
    SizeEstimate,
    split_count,
    token_ranges,
)
from headwater.core import ConfigurationError

MURMUR3 = PARTITIONERS["org.apache.cassandra.dht.Murmur3Partitioner"]
RANDOM = PARTITIONERS["org.apache.cassandra.dht.RandomPartitioner"]


@pytest.mark.parametrize("ring", [MURMUR3, RANDOM], ids=lambda r: r.name)
@pytest.mark.parametrize("count", [1, 2, 7, 64])
def test_token_ranges_cover_the_ring_once(ring, count: int) -> None:
    ranges = token_ranges(ring, count)
    assert len(ranges) == count
    assert ranges[0].start == ring.minimum and ranges[0].start_inclusive
    assert ranges[-1].end == ring.maximum
    assert all(not r.start_inclusive for r in ranges[1:])
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))  # contiguous, no overlap
    widths = [r.end - r.start for r in ranges]
    assert max(widths) - min(widths) <= 1


def test_split_count_scales_the_nodes_estimates_to_the_ring() -> None:
    quarter = (MURMUR3.maximum - MURMUR3.minimum) // 4
    # One node owns a quarter of the ring, in a range that wraps around its end: 100 MiB there.
    estimates = [
        SizeEstimate(
            MURMUR3.maximum - quarter // 2, MURMUR3.minimum + quarter // 2, 100, 1024 * 1024
        )
    ]
    assert split_count(MURMUR3, estimates, 64 * 1024 * 1024, 2) == 7  # 400 MiB / 64 MiB
    assert split_count(MURMUR3, estimates, 1024**3, 3) == 3  # at least one per reader
    assert split_count(MURMUR3, [], 64, 4) == 4  # no estimates (Cassandra < 2.1.5)


def test_options_name_the_option_at_fault_and_hide_the_password() -> None:
    with pytest.raises(ConfigurationError, match="protocol_version"):
        CassandraConnectionOptions(protocol_version=2)
    with pytest.raises(ConfigurationError, match="username and password"):
        CassandraConnectionOptions(username="app")
    with pytest.raises(ConfigurationError, match="table"):
        CassandraSourceOptions(keyspace="ks", table="bad name")
    with pytest.raises(ConfigurationError, match="key_columns are needed"):
        CassandraSinkOptions(keyspace="ks", table="t", kind=WriteKind.DELETE)
    with pytest.raises(ConfigurationError, match=r"set table \(with key_columns\) or cql"):
        CassandraSinkOptions(keyspace="ks")
    with pytest.raises(ConfigurationError) as info:
        CassandraConnectionOptions(username="app", password="s3cret-pw", port=0)
    assert "s3cret-pw" not in str(info.value)
    options = CassandraConnectionOptions(username="app", password="s3cret-pw")
    assert "s3cret-pw" not in repr(options) and "s3cret-pw" not in str(options.model_dump())


def test_generated_statements() -> None:
    base = {"keyspace": "ks", "table": "t", "key_columns": ("k", "c")}
    columns = ("k", "c", "v")
    assert sink_cql(CassandraSinkOptions(**base), columns) == (
        "INSERT INTO ks.t (k, c, v) VALUES (:k, :c, :v)"
    )
    assert (
        sink_cql(
            CassandraSinkOptions(
                **base, kind=WriteKind.UPDATE, ttl=timedelta(hours=1), timestamp_field="ts"
            ),
            columns,
        )
        == "UPDATE ks.t USING TTL 3600 AND TIMESTAMP :headwater_timestamp SET v = :v WHERE k = :k AND c = :c"
    )
    assert (
        sink_cql(
            CassandraSinkOptions(**base, kind=WriteKind.DELETE, ttl=timedelta(hours=1)), columns
        )
        == "DELETE FROM ks.t WHERE k = :k AND c = :c"
    )


def test_checkpointed_formats_round_trip() -> None:
    split = CassandraSplit("3", -(2**63), 2**62, True, b"\x00\xffstate", 17)
    assert SPLIT_SERIALIZER.deserialize(1, SPLIT_SERIALIZER.serialize(split)) == split
    assert ENUMERATOR_SERIALIZER.deserialize(1, ENUMERATOR_SERIALIZER.serialize([split])) == [split]
    assert ENUMERATOR_SERIALIZER.deserialize(1, ENUMERATOR_SERIALIZER.serialize(None)) is None
    entry = Entry((b"\x00\x00\x00\x01", None, b""))
    assert ENTRY_SERIALIZER.deserialize(1, ENTRY_SERIALIZER.serialize(entry)) == entry
    commit = Commit("sink/0/abc/4", "UPDATE ks.t SET n = n + 1 WHERE k = :k", 3, (entry,))
    assert COMMIT_SERIALIZER.deserialize(1, COMMIT_SERIALIZER.serialize(commit)) == commit
