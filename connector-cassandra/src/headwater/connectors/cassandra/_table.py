"""What the connector learns from the cluster's schema metadata: a table's keys and column types."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.connectors.cassandra._errors import CassandraConnectionError

from cassandra.cluster import Cluster

__all__ = ["TableInfo", "describe_table"]


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A table's partition-key and clustering columns, and which columns are counters."""

    keyspace: str
    table: str
    partition_key: tuple[str, ...]
    clustering_key: tuple[str, ...]
    columns: tuple[str, ...]
    counters: frozenset[str]


def _unquoted(name: str) -> str:
    return name[1:-1] if name.startswith('"') and name.endswith('"') else name.lower()


def describe_table(cluster: Cluster, keyspace: str, table: str, who: str) -> TableInfo:
    """The metadata of ``keyspace.table`` (blocking only if the driver refreshes its schema).

    Raises:
        CassandraConnectionError: the keyspace or the table does not exist.
    """
    ks_name, table_name = _unquoted(keyspace), _unquoted(table)
    metadata = cluster.metadata.keyspaces.get(ks_name)
    if metadata is None:
        cluster.refresh_schema_metadata()
        metadata = cluster.metadata.keyspaces.get(ks_name)
    if metadata is None:
        raise CassandraConnectionError(f"{who}: keyspace '{ks_name}' does not exist")
    table_meta = metadata.tables.get(table_name)
    if table_meta is None:
        cluster.refresh_table_metadata(ks_name, table_name)
        table_meta = cluster.metadata.keyspaces[ks_name].tables.get(table_name)
    if table_meta is None:
        raise CassandraConnectionError(f"{who}: table '{ks_name}.{table_name}' does not exist")
    return TableInfo(
        keyspace=ks_name,
        table=table_name,
        partition_key=tuple(c.name for c in table_meta.partition_key),
        clustering_key=tuple(c.name for c in table_meta.clustering_key),
        columns=tuple(table_meta.columns),
        counters=frozenset(n for n, c in table_meta.columns.items() if c.cql_type == "counter"),
    )
