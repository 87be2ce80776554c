"""Cached key lookups for enrichment.

Example (core has no async I/O operator yet, so look up from a ``map``)::

    from headwater.connectors.jdbc import JdbcLookup, JdbcLookupOptions

    users = JdbcLookup(JdbcLookupOptions(url=..., table="users", key_columns=("id",)))
    enriched = orders.map(lambda o: {**o, "user": users.lookup(o["user_id"])})

:meth:`JdbcLookup.lookup` blocks on a cache miss (one indexed query); it suits a ``map`` whose
keys repeat, where most calls are cache hits. :meth:`JdbcLookup.alookup` is the awaitable twin for
asynchronous code: a miss runs on a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from headwater.connectors.jdbc._database import connect, reflect_table
from headwater.connectors.jdbc._options import JdbcLookupOptions
from headwater.connectors.jdbc._retry import Backoff, retrying_blocking
from sqlalchemy import Engine, Select, Table, and_, bindparam, select

__all__ = ["JdbcLookup"]

Row = dict[str, Any]


class JdbcLookup:
    """Looks up the rows whose ``key_columns`` equal a key, with a TTL and max-rows LRU cache.

    A key is a single value for one key column, or a tuple for several. Thread-safe. Results are
    shared between callers: do not modify the returned rows.
    """

    def __init__(self, options: JdbcLookupOptions) -> None:
        if not isinstance(options, JdbcLookupOptions):
            raise TypeError(f"JdbcLookup: expected JdbcLookupOptions, got {type(options).__name__}")
        self.options = options
        self._lock = threading.Lock()
        self._cache: OrderedDict[Any, tuple[float, list[Row]]] = OrderedDict()
        self._engine: Engine | None = None
        self._query: Select[Any]
        self._backoff = Backoff(
            options.max_retries, options.retry_backoff, options.max_retry_backoff
        )
        self.hits = 0
        """Lookups answered from the cache."""
        self.misses = 0
        """Lookups that queried the database."""

    def __repr__(self) -> str:
        return f"JdbcLookup(url={self.options.url!r}, table={self.options.table!r})"

    def lookup(self, key: Any) -> list[Row]:
        """The rows matching ``key`` (blocking on a cache miss)."""
        cached = self._cached(key)
        if cached is not None:
            return cached
        rows = self._query_with_retries(key)
        self._store(key, rows)
        return rows

    async def alookup(self, key: Any) -> list[Row]:
        """The rows matching ``key``; a cache miss queries on a worker thread."""
        cached = self._cached(key)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.lookup, key)

    def close(self) -> None:
        """Release the connections and empty the cache."""
        with self._lock:
            self._cache.clear()
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def _cached(self, key: Any) -> list[Row] | None:
        ttl = self.options.cache_ttl
        if ttl is None:
            return None
        with self._lock:
            entry = self._cache.get(key)
            if entry is None or entry[0] <= time.monotonic():
                return None
            self._cache.move_to_end(key)
            self.hits += 1
            return entry[1]

    def _store(self, key: Any, rows: list[Row]) -> None:
        options = self.options
        with self._lock:
            self.misses += 1
            if options.cache_ttl is None or (not rows and not options.cache_missing):
                return
            self._cache[key] = (time.monotonic() + options.cache_ttl.total_seconds(), rows)
            self._cache.move_to_end(key)
            while len(self._cache) > options.cache_max_rows:
                self._cache.popitem(last=False)

    def _query_with_retries(self, key: Any) -> list[Row]:
        options = self.options
        values = key if len(options.key_columns) > 1 else (key,)
        params = {f"k{i}": value for i, value in enumerate(values)}

        def query() -> list[Row]:
            with self._open().connect() as connection:
                return [dict(row) for row in connection.execute(self._query, params).mappings()]

        return retrying_blocking(query, self._backoff, f"lookup in '{options.table}'")

    def _open(self) -> Engine:
        with self._lock:
            if self._engine is None:
                options = self.options
                engine = connect(options.url, options.connect_args, pool_size=4)
                with engine.connect() as connection:
                    table = reflect_table(connection, options.table, options.db_schema)
                self._query = _lookup_query(table, options.key_columns, options.columns)
                self._engine = engine
            return self._engine


def _lookup_query(table: Table, keys: Sequence[str], columns: Sequence[str] | None) -> Select[Any]:
    selected = [table.c[c] for c in columns] if columns else list(table.c)
    return select(*selected).where(
        and_(*(table.c[k] == bindparam(f"k{i}") for i, k in enumerate(keys)))
    )
