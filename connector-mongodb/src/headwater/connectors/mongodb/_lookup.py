"""MongoLookup: find one document by key, for the core's async I/O operator, with a bounded cache."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from headwater.connectors.mongodb._client import connect, translate
from headwater.connectors.mongodb._options import MongoLookupOptions
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

__all__ = ["MongoLookup"]


class MongoLookup:
    """An async function ``key -> document | None`` (``find_one`` on ``key_field``).

    Use it with ``AsyncDataStream.unordered_wait(stream, lambda r: lookup(r["customer"]), ...)``.
    With ``cache_size`` > 0, answers (misses too) are kept up to ``cache_ttl``, least recently
    used first out. The client is created on the first call on each event loop (a restarted job gets a new one). Errors
    are translated: network errors are :class:`RetryableError` (give the operator a retry
    strategy), others :class:`FatalError`.

    Args:
        options: where to look (:class:`MongoLookupOptions`).
    """

    def __init__(self, options: MongoLookupOptions) -> None:
        self.options = options
        self._client: AsyncMongoClient[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cache: OrderedDict[Any, tuple[float, dict[str, Any] | None]] = OrderedDict()
        self._ttl = options.cache_ttl.total_seconds()

    def __repr__(self) -> str:
        return f"MongoLookup({self.options!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["options"])  # type: ignore[misc]

    async def __call__(self, key: Any) -> dict[str, Any] | None:
        """The document whose ``key_field`` is ``key``, or ``None``."""
        options = self.options
        cacheable = options.cache_size > 0 and _hashable(key)
        if cacheable:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                self._cache.move_to_end(key)
                return hit[1]
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # a client serves one event loop
            self._client = connect(options)
            self._loop = loop
        assert options.database is not None and options.collection is not None
        collection = self._client[options.database][options.collection]
        try:
            found = await collection.find_one({options.key_field: key}, options.projection)
        except PyMongoError as exc:
            raise translate(exc, f"looking up {options.key_field}={key!r}", options) from exc
        if cacheable:
            self._cache[key] = (time.monotonic() + self._ttl, found)
            self._cache.move_to_end(key)
            while len(self._cache) > options.cache_size:
                self._cache.popitem(last=False)
        return found

    async def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.close()
            self._client = None


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True
