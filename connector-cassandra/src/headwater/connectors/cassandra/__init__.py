"""headwater-connector-cassandra: Apache Cassandra (and ScyllaDB) on cassandra-driver.

- :class:`CassandraSource`: a bounded, parallel read of a table in token-range splits that
  resumes inside a split after a restore.
- :class:`CassandraSink`: prepared INSERT / UPDATE / DELETE or your CQL, bounded concurrency,
  at-least-once, or exactly-once for any statement (counters included).
- :class:`CassandraLookup`: rows by partition key for async I/O enrichment, with a cache.

Example::

    from headwater.connectors.cassandra import CassandraSink, CassandraSinkOptions

    stream.sink_to(CassandraSink(CassandraSinkOptions(
        keyspace="shop", table="orders", key_columns=("id",),
    )))
"""

from headwater.connectors.cassandra._errors import (
    CassandraConnectionError,
    CassandraError,
    CassandraRecordError,
    CassandraRequestError,
    CassandraUnavailableError,
)
from headwater.connectors.cassandra._lookup import CassandraLookup
from headwater.connectors.cassandra._options import (
    CassandraConnectionOptions,
    CassandraLookupOptions,
    CassandraSinkOptions,
    CassandraSourceOptions,
    CassandraWriterOptions,
    Consistency,
    RecordErrorPolicy,
    RowFormat,
    WriteKind,
)
from headwater.connectors.cassandra._pipeline import pipeline_sink, pipeline_source
from headwater.connectors.cassandra._sink import CassandraSink, Commit
from headwater.connectors.cassandra._source import CassandraSource, CassandraSplit
from headwater.connectors.cassandra.version import __version__
from headwater.core import ConnectorSpec

__all__ = [
    "CONNECTOR",
    "CassandraConnectionError",
    "CassandraConnectionOptions",
    "CassandraError",
    "CassandraLookup",
    "CassandraLookupOptions",
    "CassandraRecordError",
    "CassandraRequestError",
    "CassandraSink",
    "CassandraSinkOptions",
    "CassandraSource",
    "CassandraSourceOptions",
    "CassandraSplit",
    "CassandraUnavailableError",
    "CassandraWriterOptions",
    "Commit",
    "Consistency",
    "RecordErrorPolicy",
    "RowFormat",
    "WriteKind",
    "__version__",
]

CONNECTOR = ConnectorSpec(
    identifier="cassandra",
    summary="Apache Cassandra / ScyllaDB: token-range source resuming inside splits, "
    "exactly-once sink for any statement, lookups.",
    source=CassandraSource,
    sink=CassandraSink,
    options={
        "source": CassandraSourceOptions,
        "sink": CassandraSinkOptions,
        "lookup": CassandraLookupOptions,
        "connection": CassandraConnectionOptions,
    },
    distribution="headwater-connector-cassandra",
    pipeline_source=pipeline_source,
    pipeline_sink=pipeline_sink,
)
"""The entry point of the Cassandra connector (group ``headwater.connectors``)."""

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("headwater.connectors.cassandra._"):
        _obj.__module__ = "headwater.connectors.cassandra"
del _name, _obj
