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
        self.write_with_ids(index, [(str(doc["n"]) if ids else None, doc) for doc in documents])

    def write_with_ids(
        self, index: str, documents: list[tuple[str | None, dict[str, Any]]]
    ) -> None:
        """Index each ``(id, document)`` (``None``: the server picks the id) and refresh."""
        lines: list[dict[str, Any]] = []
        for id_, doc in documents:
            meta: dict[str, Any] = {"_index": index}
            if id_ is not None:
                meta["_id"] = id_
            lines += [{"index": meta}, doc]
        for start in range(0, len(lines), 2000):
            answer = self.client.bulk(body=lines[start : start + 2000])
            assert not answer["errors"], answer["items"][:3]
        self.client.indices.refresh(index=index)

    def ids_by_slice(self, index: str, slices: int, candidates: int) -> list[list[str]]:
        """Which of the ids ``"0"`` .. ``candidates - 1`` each slice of ``slices`` holds.

        Asked of the server itself (a scratch index ``{index}-probe`` and a sliced search in a
        point in time): how it cuts slices is its own business.
        """
        probe = f"{index}-probe"
        self.create_index(probe, {"n": {"type": "long"}})
        self.write(probe, [{"n": n} for n in range(candidates)])
        if self.flavor is Flavor.ELASTICSEARCH:
            pit = {
                "id": self.client.transport.perform_request(
                    "POST", f"/{probe}/_pit", params={"keep_alive": "1m"}
                )["id"]
            }
        else:
            pit = {
                "id": self.client.transport.perform_request(
                    "POST", f"/{probe}/_search/point_in_time", params={"keep_alive": "1m"}
                )["pit_id"]
            }
        found: list[list[str]] = []
        for slice_id in range(slices):
            body = {
                "size": candidates,
                "pit": pit,
                "sort": [{"n": "asc"}],
                "slice": {"id": slice_id, "max": slices},
            }
            found.append([hit["_id"] for hit in self.client.search(body=body)["hits"]["hits"]])
        self.client.indices.delete(index=probe)
        return found

    def create_index(self, index: str, properties: dict[str, Any], **settings: Any) -> None:
        """Create ``index`` with a mapping of ``properties``."""
        body: dict[str, Any] = {"mappings": {"properties": properties}}
        if settings:
            body["settings"] = settings
        self.client.indices.create(index=index, body=body)
