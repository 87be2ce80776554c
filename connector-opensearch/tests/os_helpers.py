"""Test helpers: a test server of one flavor and reading an index back with a plain client."""

from __future__ import annotations

from typing import Any

from headwater.connectors.opensearch import Flavor, OpenSearchClientOptions
from opensearchpy import OpenSearch


class Server:
    """A running test server: its flavor, URL, connector options and a blocking client."""

    def __init__(self, flavor: str, url: str) -> None:
        self.flavor = Flavor(flavor)
        self.url = url
        self.client = OpenSearch(hosts=[url], timeout=30)

    def options(self, url: str | None = None) -> OpenSearchClientOptions:
        """Client options reaching this server (or ``url``, a proxy in front of it)."""
        return OpenSearchClientOptions(hosts=(url or self.url,), flavor=self.flavor)

    def documents(self, index: str) -> list[dict[str, Any]]:
        """Every document of ``index`` by ``n`` (hits with ``_id``, ``_version``, ``_source``), after a refresh."""
        self.client.indices.refresh(index=index)
        hits: list[dict[str, Any]] = []
        body: dict[str, Any] = {
            "size": 5000,
            "sort": [{"n": "asc"}],
            "query": {"match_all": {}},
            "version": True,
        }
        while True:
            page = self.client.search(index=index, body=body)["hits"]["hits"]
            hits += page
            if len(page) < body["size"]:
                return hits
            body["search_after"] = page[-1]["sort"]

    def write(self, index: str, documents: list[dict[str, Any]], ids: bool = True) -> None:
        """Index ``documents`` (ids ``str(doc["n"])`` when ``ids``) and refresh."""
        lines: list[dict[str, Any]] = []
        for doc in documents:
            meta: dict[str, Any] = {"_index": index}
            if ids:
                meta["_id"] = str(doc["n"])
            lines += [{"index": meta}, doc]
        for start in range(0, len(lines), 2000):
            answer = self.client.bulk(body=lines[start : start + 2000])
            assert not answer["errors"], answer["items"][:3]
        self.client.indices.refresh(index=index)

    def create_index(self, index: str, properties: dict[str, Any], **settings: Any) -> None:
        """Create ``index`` with a mapping of ``properties``."""
        body: dict[str, Any] = {"mappings": {"properties": properties}}
        if settings:
            body["settings"] = settings
        self.client.indices.create(index=index, body=body)
