"""Rows by partition key, for the async I/O operator, with an optional TTL + LRU cache.

Example::

    from datetime import timedelta
    from headwater.core import AsyncDataStream
    from headwater.connectors.cassandra import CassandraLookup, CassandraLookupOptions

    users = CassandraLookup(CassandraLookupOptions(
        keyspace="shop", table="users", key_columns=("user_id",), cache_ttl=timedelta(minutes=5),
    ))

    async def enrich(order):
        return {**order, "user": await users.alookup(order["user_id"])}

    enriched = AsyncDataStream.unordered_wait(orders, enrich, timeout=timedelta(seconds=5))

A key is one value for one key column, or a tuple for several. Queries are sent with
``execute_async`` and awaited on the event loop; connecting (once) runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from headwater.connectors.base import retry
from headwater.connectors.cassandra._errors import (
    CassandraUnavailableError,
    is_transient,
    with_cassandra_classifier,
)
from headwater.connectors.cassandra._options import CassandraLookupOptions, RowFormat
from headwater.connectors.cassandra._session import (
    Connection,
    aexecute,
    connect,
    consistency_level,
)

from cassandra.query import PreparedStatement, dict_factory, named_tuple_factory

__all__ = ["CassandraLookup"]

_WHO = "cassandra lookup"


class CassandraLookup:
    """Looks up the rows of a partition key; results are shared, do not modify them.

    Use it from one event loop (the job's). Call :meth:`aclose` when done.
    """

    def __init__(self, options: CassandraLookupOptions) -> None:
        if not isinstance(options, CassandraLookupOptions):
            raise TypeError(
                f"CassandraLookup: expected CassandraLookupOptions, got {type(options).__name__}"
            )
        self.options = options
        self._policy = with_cassandra_classifier(options.retry_policy)
        self._cache: OrderedDict[Any, tuple[float, list[Any]]] = OrderedDict()
        self._connection: Connection | None = None
        self._query: PreparedStatement | None = None
        self._opening: asyncio.Future[PreparedStatement] | None = None
        self.hits = 0
        """Lookups answered from the cache."""
        self.misses = 0
        """Lookups that queried Cassandra."""

    def __repr__(self) -> str:
        return f"CassandraLookup({self.options.keyspace}.{self.options.table})"

    async def alookup(self, key: Any) -> list[Any]:
        """The rows whose partition key equals ``key``."""
        cached = self._cached(key)
        if cached is not None:
            return cached
        query = await self._prepared()
        values = key if len(self.options.key_columns) > 1 else (key,)
        bound = query.bind(values)

        async def attempt() -> list[Any]:
            assert self._connection is not None
            try:
                result = await aexecute(self._connection.session, bound)
            except Exception as exc:
                if is_transient(exc):
                    raise CassandraUnavailableError(f"{_WHO}: {exc}") from exc
                raise
            return list(result.current_rows)

        rows = await retry(attempt, self._policy)
        self._store(key, rows)
        return rows

    async def aclose(self) -> None:
        """Shut the driver down and empty the cache."""
        self._cache.clear()
        if self._connection is not None:
            connection, self._connection = self._connection, None
            self._query = self._opening = None
            await asyncio.to_thread(connection.close)

    def _cached(self, key: Any) -> list[Any] | None:
        if self.options.cache_ttl is None:
            return None
        entry = self._cache.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        self._cache.move_to_end(key)
        self.hits += 1
        return entry[1]

    def _store(self, key: Any, rows: list[Any]) -> None:
        self.misses += 1
        options = self.options
        if options.cache_ttl is None or (not rows and not options.cache_missing):
            return
        self._cache[key] = (time.monotonic() + options.cache_ttl.total_seconds(), rows)
        self._cache.move_to_end(key)
        while len(self._cache) > options.cache_max_keys:
            self._cache.popitem(last=False)

    async def _prepared(self) -> PreparedStatement:
        if self._query is not None:
            return self._query
        if self._opening is None:  # one connection for concurrent first lookups
            self._opening = asyncio.ensure_future(asyncio.to_thread(self._open))
        self._query = await asyncio.shield(self._opening)
        return self._query

    def _open(self) -> PreparedStatement:
        options = self.options
        factory = (
            named_tuple_factory if options.row_format is RowFormat.NAMED_TUPLE else dict_factory
        )
        connection = connect(options.connection, _WHO, row_factory=factory)
        columns = ", ".join(options.columns) if options.columns else "*"
        where = " AND ".join(f"{k} = ?" for k in options.key_columns)
        try:
            query = connection.session.prepare(
                f"SELECT {columns} FROM {options.keyspace}.{options.table} WHERE {where}"
            )
        except Exception:
            connection.close()
            raise
        query.consistency_level = consistency_level(options.consistency)
        self._connection = connection
        return query
