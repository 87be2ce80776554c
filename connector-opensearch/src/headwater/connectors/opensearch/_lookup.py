"""OpenSearchLookup: documents by id (batched into ``mget``) or by a term query, with an LRU cache.

Example, with the core's async I/O operator::

    from headwater.core import AsyncDataStream
    from headwater.connectors.opensearch import OpenSearchLookup, OpenSearchLookupOptions

    users = OpenSearchLookup(OpenSearchLookupOptions(client=client, index="users", cache_size=10_000))

    async def enrich(order):
        found = await users.lookup(order["user_id"])
        return {**order, "user": found[0] if found else None}

    enriched = AsyncDataStream.unordered_wait(orders, enrich, timeout=timedelta(seconds=5))

Lookups by id that are issued together (the async I/O operator keeps up to ``capacity`` calls in
flight) are coalesced into one ``mget`` per event-loop turn. Term lookups are one search each.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from headwater.connectors.opensearch._client import Masker, create_client, translate
from headwater.connectors.opensearch._options import OpenSearchLookupOptions
from headwater.core import ConfigurationError, FatalError
from opensearchpy import AsyncOpenSearch

__all__ = ["OpenSearchLookup"]

Document = dict[str, Any]


class OpenSearchLookup:
    """Looks documents up by id or by a field's value; answers are ``_source`` dicts.

    Use it from one event loop (the job's): the client is built there at the first lookup.
    Results may come from the cache and are shared: do not modify them.
    """

    def __init__(self, options: OpenSearchLookupOptions) -> None:
        if not isinstance(options, OpenSearchLookupOptions):
            raise ConfigurationError(
                f"opensearch lookup: expected OpenSearchLookupOptions, got {type(options).__name__}"
            )
        self.options = options
        self._mask = Masker(options.client)
        self._client: AsyncOpenSearch | None = None
        self._cache: OrderedDict[str, tuple[float, list[Document]]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[list[Document]]] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        self.hits = 0
        """Lookups answered from the cache."""
        self.requests = 0
        """Requests sent to the server (one ``mget`` answers many id lookups)."""

    def __repr__(self) -> str:
        return f"OpenSearchLookup(index={self.options.index!r}, field={self.options.field!r})"

    async def lookup(self, key: Any) -> list[Document]:
        """The documents whose id (or ``field``) is ``key``: at most one by id."""
        text = str(key)
        cached = self._cached(text)
        if cached is not None:
            return cached
        if self.options.field is not None:
            found = await self._search(key)
        else:
            found = await self._get(text)
        self._store(text, found)
        return found

    async def aclose(self) -> None:
        """Close the client and empty the cache."""
        self._cache.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    @property
    def client(self) -> AsyncOpenSearch:
        """The client (built at first use on the running event loop)."""
        if self._client is None:
            self._client = create_client(self.options.client)
        return self._client

    def _cached(self, key: str) -> list[Document] | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        ttl = self.options.cache_ttl
        if ttl is not None and time.monotonic() - entry[0] > ttl.total_seconds():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        self.hits += 1
        return entry[1]

    def _store(self, key: str, documents: list[Document]) -> None:
        size = self.options.cache_size
        if size == 0:
            return
        self._cache[key] = (time.monotonic(), documents)
        self._cache.move_to_end(key)
        while len(self._cache) > size:
            self._cache.popitem(last=False)

    async def _get(self, doc_id: str) -> list[Document]:
        """One id; ids requested in the same event-loop turn share one ``mget``."""
        future = self._pending.get(doc_id)
        if future is None:
            loop = asyncio.get_running_loop()
            if not self._pending:  # the first id of this turn: send them all next turn
                flush = loop.create_task(self._flush())
                self._flushes.add(flush)
                flush.add_done_callback(self._flushes.discard)
            future = self._pending[doc_id] = loop.create_future()
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        self.requests += 1
        try:
            answer = await self.client.mget(index=self.options.index, body={"ids": list(pending)})
        except Exception as exc:
            error = translate(
                exc, f"mget of {len(pending)} ids in {self.options.index!r}", self._mask
            )
            for future in pending.values():
                if not future.done():
                    future.set_exception(error)
            return
        for doc in answer["docs"]:
            waiting = pending.get(str(doc.get("_id")))
            if waiting is None or waiting.done():
                continue
            error = doc.get("error")
            if error is not None:  # per document, as for a missing index
                kind, reason = (
                    (error.get("type"), error.get("reason"))
                    if isinstance(error, dict)
                    else ("", error)
                )
                waiting.set_exception(
                    FatalError(
                        self._mask(
                            f"opensearch lookup: getting id {doc.get('_id')!r} from "
                            f"{self.options.index!r} failed: {kind}: {reason}"
                        )
                    )
                )
            else:
                waiting.set_result([doc["_source"]] if doc.get("found") else [])
        for future in pending.values():  # ids the answer did not name
            if not future.done():
                future.set_result([])

    async def _search(self, value: Any) -> list[Document]:
        self.requests += 1
        body = {"size": self.options.max_hits, "query": {"term": {self.options.field: value}}}
        try:
            answer = await self.client.search(index=self.options.index, body=body)
        except Exception as exc:
            raise translate(
                exc,
                f"looking up {self.options.field}={value!r} in {self.options.index!r}",
                self._mask,
            ) from None
        return [hit["_source"] for hit in answer["hits"]["hits"]]
