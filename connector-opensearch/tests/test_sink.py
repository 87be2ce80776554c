"""OpenSearchSink against both test servers: per-item retries, versions, bad input, size limits."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from headwater.connectors.base import DeadLetter, DeadLetterOnError, SkipOnError
from headwater.connectors.opensearch import (
    BulkRejectedError,
    OpenSearchClientOptions,
    OpenSearchSink,
    OpenSearchSinkOptions,
)
from headwater.core import JobResult, StreamEnvironment
from opensearchpy import AsyncOpenSearch, helpers
from os_helpers import Server
from size_limit_proxy import SizeLimitProxy

FAST_RETRIES = {
    "retry_policy": {
        "max_attempts": 2,
        "backoff": {"initial": timedelta(milliseconds=10), "maximum": timedelta(milliseconds=20)},
    }
}


def _run(records: Sequence[Any], sink: OpenSearchSink[Any], parallelism: int = 2) -> JobResult:
    env = StreamEnvironment(parallelism=parallelism)
    env.from_collection(list(records)).sink_to(sink)
    return env.execute("opensearch sink test")


def _sink_metrics(result: JobResult) -> dict[str, Any]:
    return next(m for name, m in result.metrics.items() if name.startswith("Sink"))


def _records(count: int) -> list[dict[str, Any]]:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [
        {
            "n": n,
            "key": n % 700,
            "at": start + dt.timedelta(seconds=n),
            "price": Decimal(n) / 100,
            "pair": (n, -n),
        }
        for n in range(count)
    ]


def _as_stored(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the documented JSON conversions store it."""
    return {
        **record,
        "at": record["at"].isoformat(),
        "price": str(record["price"]),
        "pair": list(record["pair"]),
    }


def _errors(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _options(
    server: Server, index: str, url: str | None = None, **kwargs: Any
) -> OpenSearchSinkOptions:
    return OpenSearchSinkOptions(client=server.options(url), index=index, **kwargs)


async def _raw_bulk(url: str, index: str, records: list[dict[str, Any]]) -> None:
    client = AsyncOpenSearch(hosts=[url])
    try:
        actions = [{"_index": index, "_id": str(r["n"]), "_source": _as_stored(r)} for r in records]
        await helpers.async_bulk(
            client, actions, chunk_size=500, raise_on_error=False, max_retries=0
        )
    finally:
        await client.close()


def test_throttled_items_are_retried_alone_and_written_once(
    server: Server, unique_name: str, fault_http_proxy_factory: Callable[..., Any]
) -> None:
    records = _records(3000)
    # The check can see a loss: opensearch-py's bulk helper without retries loses the 429 items.
    lossy = fault_http_proxy_factory(server.url, failure_rate=0.1, seed=1)
    asyncio.run(_raw_bulk(lossy.url, f"{unique_name}_raw", records))
    assert len(server.documents(f"{unique_name}_raw")) < len(records)

    proxy = fault_http_proxy_factory(server.url, failure_rate=0.1, seed=2)
    sink = OpenSearchSink(
        _options(server, unique_name, proxy.url, id_fields=("n",), writer={"max_batch_size": 200})
    )
    result = _run(records, sink)

    hits = server.documents(unique_name)
    assert [hit["_source"] for hit in hits] == [_as_stored(r) for r in records]
    assert [hit["_id"] for hit in hits] == [str(r["n"]) for r in records]
    # Every item reached the server once: a retried whole bulk would have rewritten version 1.
    assert {hit["_version"] for hit in hits} == {1}
    failed = proxy.stats()["opensearch._bulk"].failed
    assert failed > 0
    metrics = _sink_metrics(result)
    assert metrics["numItemRetries"] == failed
    assert metrics["numRecordsOut"] == len(records)


def test_external_versions_keep_the_newest_under_throttling(
    server: Server, unique_name: str, fault_http_proxy_factory: Callable[..., Any]
) -> None:
    records = _records(3000)
    proxy = fault_http_proxy_factory(server.url, failure_rate=0.1, seed=3)
    options = _options(
        server,
        unique_name,
        proxy.url,
        id_fields=("key",),
        version_field="n",
        writer={"max_batch_size": 100},
    )
    _run(records, OpenSearchSink(options))
    newest = {r["key"]: r for r in records}  # the last record of each key has the highest n
    hits = server.documents(unique_name)
    assert {hit["_id"]: (hit["_version"], hit["_source"]) for hit in hits} == {
        str(key): (r["n"], _as_stored(r)) for key, r in newest.items()
    }
    assert proxy.stats()["opensearch._bulk"].failed > 0


def test_replayed_older_data_never_overwrites_newer(server: Server, unique_name: str) -> None:
    old = [{"n": n, "v": 1, "value": "old"} for n in range(200)]
    new = [{"n": n, "v": 2, "value": "new"} for n in range(200)]
    # The check can see an overwrite: without versions a replay of old data wins.
    plain = _options(server, f"{unique_name}_plain", id_fields=("n",))
    _run(new, OpenSearchSink(plain))
    _run(old, OpenSearchSink(plain))
    assert {h["_source"]["value"] for h in server.documents(f"{unique_name}_plain")} == {"old"}

    versioned = _options(server, unique_name, id_fields=("n",), version_field="v")
    _run(new, OpenSearchSink(versioned))
    result = _run(old, OpenSearchSink(versioned))
    hits = server.documents(unique_name)
    assert [(h["_id"], h["_version"], h["_source"]) for h in hits] == [
        (str(r["n"]), 2, r) for r in new
    ]
    assert _sink_metrics(result)["numStaleVersionsIgnored"] == len(old)


def test_index_per_record_from_a_field_and_a_date_pattern(server: Server, unique_name: str) -> None:
    records = _records(300)
    for r in records:
        r["tenant"] = f"t{r['n'] % 3}"
    by_tenant = _options(server, unique_name + "_{tenant}", id_fields=("n",))
    _run(records, OpenSearchSink(by_tenant))
    for tenant in ("t0", "t1", "t2"):
        hits = server.documents(f"{unique_name}_{tenant}")
        assert [h["_source"] for h in hits] == [
            _as_stored(r) for r in records if r["tenant"] == tenant
        ]
    daily = _options(server, unique_name + "_{at:%Y.%m.%d.%H}", id_fields=("n",))
    _run(records, OpenSearchSink(daily))  # 300 seconds from midnight: one hour
    assert len(server.documents(f"{unique_name}_2024.01.01.00")) == len(records)


def test_update_delete_and_composite_ids(server: Server, unique_name: str) -> None:
    rows = [{"n": n, "region": "eu" if n % 2 else "us", "count": n} for n in range(100)]
    base = {"id_fields": ("region", "n"), "id_separator": ":"}
    _run(rows, OpenSearchSink(_options(server, unique_name, **base)))
    updates = [{"n": n, "region": "eu" if n % 2 else "us", "count": -n} for n in range(0, 100, 5)]
    _run(updates, OpenSearchSink(_options(server, unique_name, action="update", **base)))
    deletes = [{"n": n, "region": "eu" if n % 2 else "us"} for n in range(0, 100, 10)]
    _run(deletes, OpenSearchSink(_options(server, unique_name, action="delete", **base)))
    _run(deletes, OpenSearchSink(_options(server, unique_name, action="delete", **base)))  # replay
    expected = {
        f"{r['region']}:{r['n']}": {**r, "count": -r["n"] if r["n"] % 5 == 0 else r["n"]}
        for r in rows
        if r["n"] % 10
    }
    assert {h["_id"]: h["_source"] for h in server.documents(unique_name)} == expected


@pytest.fixture
def strict_index(server: Server, unique_name: str) -> str:
    server.create_index(
        unique_name,
        {"n": {"type": "integer"}, "name": {"type": "keyword"}},
    )
    server.client.indices.put_mapping(index=unique_name, body={"dynamic": "strict"})
    return unique_name


def _with_bad(count: int) -> tuple[list[dict[str, Any]], list[int]]:
    records: list[dict[str, Any]] = [{"n": n, "name": f"r{n}"} for n in range(count)]
    bad = [7, 250, 401]
    records[7]["n"] = "seven"  # wrong type: the id field stays "seven"
    records[250]["extra"] = True  # strict mapping
    records[401]["n"] = "x401"
    return records, bad


def test_refused_documents_fail_the_job_naming_index_id_status_and_reason(
    server: Server, strict_index: str
) -> None:
    records, _ = _with_bad(500)
    sink = OpenSearchSink(_options(server, strict_index, id_fields=("name",)))
    with pytest.raises(Exception) as info:
        _run(records, sink)
    refused = next(e for e in _errors(info.value) if isinstance(e, BulkRejectedError))
    assert strict_index in str(refused)
    assert "400" in str(refused)
    assert any(f"'r{i}'" in str(refused) for i in (7, 250, 401)), refused
    assert "exception" in str(refused)  # the server's error type


def test_refused_documents_skipped_or_dead_lettered_lose_nothing_else(
    server: Server, strict_index: str
) -> None:
    records, bad = _with_bad(500)
    sink = OpenSearchSink(
        _options(server, strict_index, id_fields=("name",)), error_policy=SkipOnError()
    )
    result = _run(records, sink)
    good = [r for i, r in enumerate(records) if i not in bad]
    assert [h["_source"] for h in server.documents(strict_index)] == good
    assert _sink_metrics(result)["numRecordsRejected"] == len(bad)

    server.client.indices.delete(index=strict_index)
    server.create_index(strict_index, {"n": {"type": "integer"}, "name": {"type": "keyword"}})
    server.client.indices.put_mapping(index=strict_index, body={"dynamic": "strict"})
    letters: list[DeadLetter] = []
    sink = OpenSearchSink(
        _options(server, strict_index, id_fields=("name",)),
        error_policy=DeadLetterOnError(letters.append),
    )
    _run(records, sink, parallelism=1)
    assert [h["_source"] for h in server.documents(strict_index)] == good
    assert sorted(letter.position for letter in letters) == sorted(
        f"index {strict_index!r} id 'r{i}'" for i in bad
    )
    assert all(b'"_id":"r' in letter.payload and "400" in letter.error for letter in letters)


def test_an_index_name_the_server_refuses(server: Server, unique_name: str) -> None:
    records = [{"n": n, "target": "Bad*Name" if n == 3 else unique_name} for n in range(50)]
    sink = OpenSearchSink(
        _options(server, "{target}", id_fields=("n",)), error_policy=SkipOnError()
    )
    result = _run(records, sink)
    stored = [h["_source"] for h in server.documents(unique_name)]
    assert stored == [r for r in records if r["n"] != 3]
    if server.flavor.value == "elasticsearch":
        # noida-db accepts invalid index names (real Elasticsearch refuses them with a 400).
        return
    assert _sink_metrics(result)["numRecordsRejected"] == 1


def test_requests_over_the_server_limit_are_halved(server: Server, unique_name: str) -> None:
    records = [{"n": n, "pad": "x" * 200} for n in range(400)]
    records[123]["pad"] = "y" * 20_000  # alone over the limit
    with SizeLimitProxy(server.url, limit=16_000) as proxy:
        letters: list[DeadLetter] = []
        sink = OpenSearchSink(
            _options(
                server, unique_name, proxy.url, id_fields=("n",), writer={"max_batch_size": 400}
            ),
            error_policy=DeadLetterOnError(letters.append),
        )
        _run(records, sink, parallelism=1)
        assert proxy.refused > 1
    assert [h["_source"] for h in server.documents(unique_name)] == [
        r for r in records if r["n"] != 123
    ]
    assert [letter.position for letter in letters] == [f"index {unique_name!r} id '123'"]
    assert letters[0].error.startswith("413")


def test_unreachable_host_fails_clearly_without_printing_the_password(
    unique_name: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cr3t-pa55"
    options = OpenSearchSinkOptions(
        client=OpenSearchClientOptions(hosts=(f"http://admin:{secret}@127.0.0.1:1",)),
        index=unique_name,
        writer=FAST_RETRIES,
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as info:
        _run([{"n": 1}], OpenSearchSink(options), parallelism=1)
    chain = list(_errors(info.value))
    text = "\n".join(f"{e!r} {e} {getattr(e, '__notes__', '')}" for e in chain)
    assert "opensearch" in text and "ConnectionError" in text
    assert "gave up after 2 attempt(s)" in text
    captured = capsys.readouterr()
    for output in (text, caplog.text, captured.out, captured.err, repr(options), str(options)):
        assert secret not in output


def test_cut_connections_and_a_refusing_server_lose_nothing(
    server: Server, unique_name: str, tcp_proxy_factory: Callable[..., Any]
) -> None:
    records = _records(4000)
    where = urlsplit(server.url)
    proxy = tcp_proxy_factory(where.hostname, where.port)
    proxy.delay(0.02)  # requests stay on the wire long enough to be cut
    stop = threading.Event()

    def outages() -> None:
        while not stop.wait(0.15):
            proxy.cut()  # requests in flight are lost: sent again (their answers never came)
        proxy.refuse()  # then the server is gone for a moment
        time.sleep(0.5)
        proxy.restore()

    sink = OpenSearchSink(
        _options(
            server,
            unique_name,
            f"http://{proxy.address}",
            id_fields=("n",),
            writer={"max_batch_size": 100, "max_in_flight_requests": 2},
        )
    )
    cutter = threading.Thread(target=outages)
    cutter.start()
    try:
        timer = threading.Timer(1.5, stop.set)
        timer.start()
        result = _run(records, sink)
    finally:
        stop.set()
        cutter.join()
    hits = server.documents(unique_name)
    assert [hit["_source"] for hit in hits] == [_as_stored(r) for r in records]
    assert _sink_metrics(result)["numRecordsSendErrors"] > 0, "no request was cut"
