"""Fault-injecting proxies for failures that no test server produces by itself.

:class:`FaultHttpProxy` sits in front of an HTTP API and fails a seeded share of the
entries of batch calls, each entry at most once, as the real services do under load:

- Kinesis ``PutRecords`` (``X-Amz-Target: Kinesis_20131202.PutRecords``): the entry's
  result gets ``ErrorCode: ProvisionedThroughputExceededException``.
- Firehose ``PutRecordBatch`` (``Firehose_20150804.PutRecordBatch``): the result gets
  ``ErrorCode: ServiceUnavailableException``.
- DynamoDB ``BatchWriteItem`` (``DynamoDB_20120810.BatchWriteItem``): the request is
  returned in ``UnprocessedItems``.
- OpenSearch/Elasticsearch ``_bulk`` (``POST``/``PUT`` to a path ending in ``/_bulk``):
  the item gets status 429, ``es_rejected_execution_exception``.

Failed entries are removed from the request before it is forwarded (so the server never
sees them) and spliced back into the server's answer at their positions. An entry is
recognised again by its content, so a retried entry always goes through. Every other
request passes unchanged. A delay (added to every request) serves benchmarks.

:class:`TcpProxy` relays a TCP port and can delay traffic, cut the open connections
(reset) and refuse new ones, to script broker and database outages.

Both bind 127.0.0.1, run in daemon threads of the calling process, are context managers,
and can be reconfigured while they run.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import random
import socket
import struct
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from .settings import HOST

__all__ = ["FaultHttpProxy", "OperationStats", "TcpProxy"]

# Not forwarded: hop-by-hop headers, the length (recomputed) and Expect (answered here).
_HOP_BY_HOP = {
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


# --- batch APIs ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One parsed batch request: its entries, and how to rebuild it from a subset."""

    api: _BatchApi
    document: Any
    """The parsed request body (for ``_bulk``: the index named in the path, if any)."""
    entries: Sequence[Any]

    def fingerprint(self, index: int) -> bytes:
        canonical = json.dumps(self.entries[index], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{self.api.name}\0{canonical}".encode()).digest()


class _BatchApi(ABC):
    """A batch call whose entries can fail one by one."""

    name: ClassVar[str]
    content_type: ClassVar[str] = "application/x-amz-json-1.1"

    @abstractmethod
    def matches(self, method: str, path: str, target: str) -> bool:
        """Tell whether a request is this call."""

    @abstractmethod
    def parse(self, body: bytes, path: str) -> _Call:
        """Split a request body into its entries."""

    @abstractmethod
    def request(self, call: _Call, kept: Sequence[int]) -> bytes:
        """Rebuild the request body with only the entries at ``kept``."""

    @abstractmethod
    def response(self, call: _Call, upstream: Any, failed: Sequence[int]) -> Any:
        """Merge the server's answer (``None`` if nothing was forwarded) with failures."""


def _splice(total: int, failed: Sequence[int], forwarded: Sequence[Any], error: Any) -> list[Any]:
    """Put ``forwarded`` results and ``error`` back in the original order of ``total``."""
    failed_set = set(failed)
    results = iter(forwarded)
    return [error(i) if i in failed_set else next(results) for i in range(total)]


class _AwsRecordsApi(_BatchApi):
    """Kinesis PutRecords and Firehose PutRecordBatch: a ``Records`` list in and out."""

    target: ClassVar[str]
    results_key: ClassVar[str]
    failed_count_key: ClassVar[str]
    error_code: ClassVar[str]

    def matches(self, method: str, path: str, target: str) -> bool:
        return target == self.target

    def parse(self, body: bytes, path: str) -> _Call:
        document = json.loads(body)
        return _Call(self, document, document.get("Records", []))

    def request(self, call: _Call, kept: Sequence[int]) -> bytes:
        return json.dumps({**call.document, "Records": [call.entries[i] for i in kept]}).encode()

    def response(self, call: _Call, upstream: Any, failed: Sequence[int]) -> Any:
        upstream = upstream or {self.failed_count_key: 0, self.results_key: []}
        error = {
            "ErrorCode": self.error_code,
            "ErrorMessage": "Injected by the headwater fault proxy: slow down and retry.",
        }
        return {
            **upstream,
            self.failed_count_key: upstream.get(self.failed_count_key, 0) + len(failed),
            self.results_key: _splice(
                len(call.entries), failed, upstream.get(self.results_key, []), lambda _: error
            ),
        }


class _KinesisPutRecords(_AwsRecordsApi):
    name = "kinesis.PutRecords"
    target = "Kinesis_20131202.PutRecords"
    results_key = "Records"
    failed_count_key = "FailedRecordCount"
    error_code = "ProvisionedThroughputExceededException"


class _FirehosePutRecordBatch(_AwsRecordsApi):
    name = "firehose.PutRecordBatch"
    target = "Firehose_20150804.PutRecordBatch"
    results_key = "RequestResponses"
    failed_count_key = "FailedPutCount"
    error_code = "ServiceUnavailableException"


class _DynamoDbBatchWriteItem(_BatchApi):
    """BatchWriteItem: entries are ``(table, request)``; failures go to UnprocessedItems."""

    name = "dynamodb.BatchWriteItem"
    content_type = "application/x-amz-json-1.0"

    def matches(self, method: str, path: str, target: str) -> bool:
        return target == "DynamoDB_20120810.BatchWriteItem"

    def parse(self, body: bytes, path: str) -> _Call:
        document = json.loads(body)
        entries = [
            [table, request]
            for table, requests in document.get("RequestItems", {}).items()
            for request in requests
        ]
        return _Call(self, document, entries)

    @staticmethod
    def _group(entries: Sequence[Any]) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for table, request in entries:
            grouped.setdefault(table, []).append(request)
        return grouped

    def request(self, call: _Call, kept: Sequence[int]) -> bytes:
        items = self._group([call.entries[i] for i in kept])
        return json.dumps({**call.document, "RequestItems": items}).encode()

    def response(self, call: _Call, upstream: Any, failed: Sequence[int]) -> Any:
        upstream = upstream or {}
        unprocessed = {t: list(r) for t, r in upstream.get("UnprocessedItems", {}).items()}
        for table, requests in self._group([call.entries[i] for i in failed]).items():
            unprocessed.setdefault(table, []).extend(requests)
        return {**upstream, "UnprocessedItems": unprocessed}


class _Bulk(_BatchApi):
    """OpenSearch/Elasticsearch ``_bulk``: NDJSON action lines, each but delete with a source."""

    name = "opensearch._bulk"
    content_type = "application/json"

    def matches(self, method: str, path: str, target: str) -> bool:
        route = urlsplit(path).path.rstrip("/")
        return method in {"POST", "PUT"} and (route == "/_bulk" or route.endswith("/_bulk"))

    def parse(self, body: bytes, path: str) -> _Call:
        lines = iter(json.loads(line) for line in body.splitlines() if line.strip())
        entries = []
        for action in lines:
            (verb,) = action
            entries.append([action] if verb == "delete" else [action, next(lines)])
        route = urlsplit(path).path.strip("/").split("/")
        default_index = route[0] if len(route) > 1 else None
        return _Call(self, default_index, entries)

    def request(self, call: _Call, kept: Sequence[int]) -> bytes:
        lines = [json.dumps(part) for i in kept for part in call.entries[i]]
        return ("\n".join(lines) + "\n").encode()

    def response(self, call: _Call, upstream: Any, failed: Sequence[int]) -> Any:
        upstream = upstream or {"took": 0, "errors": False, "items": []}

        def rejected(index: int) -> Any:
            ((verb, meta),) = call.entries[index][0].items()
            return {
                verb: {
                    "_index": meta.get("_index", call.document),
                    "_id": meta.get("_id"),
                    "status": 429,
                    "error": {
                        "type": "es_rejected_execution_exception",
                        "reason": "Injected by the headwater fault proxy: bulk queue full.",
                    },
                }
            }

        items = _splice(len(call.entries), failed, upstream.get("items", []), rejected)
        return {**upstream, "errors": bool(upstream.get("errors")) or bool(failed), "items": items}


_APIS: tuple[_BatchApi, ...] = (
    _KinesisPutRecords(),
    _FirehosePutRecordBatch(),
    _DynamoDbBatchWriteItem(),
    _Bulk(),
)


# --- the HTTP proxy ------------------------------------------------------------------


@dataclass
class OperationStats:
    """Counts for one batch call: requests seen, entries seen, entries failed."""

    requests: int = 0
    entries: int = 0
    failed: int = 0


@dataclass
class _Faults:
    """The proxy's mutable settings and memory, guarded by one lock."""

    failure_rate: float
    delay: float
    rng: random.Random
    failed_before: set[bytes] = field(default_factory=set)
    stats: dict[str, OperationStats] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def choose(self, call: _Call) -> list[int]:
        """Pick the entries to fail now: never one that failed before."""
        with self.lock:
            stats = self.stats.setdefault(call.api.name, OperationStats())
            stats.requests += 1
            stats.entries += len(call.entries)
            failed = []
            for index in range(len(call.entries)):
                fingerprint = call.fingerprint(index)
                if fingerprint in self.failed_before:
                    continue
                if self.rng.random() < self.failure_rate:
                    self.failed_before.add(fingerprint)
                    failed.append(index)
            stats.failed += len(failed)
            return failed


class FaultHttpProxy:
    """An HTTP proxy on 127.0.0.1 that fails a seeded share of batch entries.

    ``failure_rate`` is the chance that an entry not failed before fails now; ``seed``
    makes the choice repeatable for the same sequence of requests; ``delay`` (seconds)
    is added to every request. Use as a context manager or call :meth:`start` and
    :meth:`stop`; point the client's endpoint at :attr:`url`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        failure_rate: float = 0.0,
        seed: int = 0,
        delay: float = 0.0,
        port: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self._faults = _Faults(failure_rate, delay, random.Random(seed))
        self._validate(failure_rate, delay)
        self._server = _ProxyServer((HOST, port), _ProxyHandler, proxy=self)
        self._thread: threading.Thread | None = None

    @staticmethod
    def _validate(failure_rate: float, delay: float) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be within [0, 1], not {failure_rate}")
        if delay < 0:
            raise ValueError(f"delay must not be negative, not {delay}")

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        """The proxy's base URL, to use as the client's endpoint."""
        return f"http://{HOST}:{self.port}"

    def configure(
        self,
        *,
        failure_rate: float | None = None,
        seed: int | None = None,
        delay: float | None = None,
    ) -> None:
        """Change settings while running; a new ``seed`` restarts the random sequence.

        Entries that already failed stay exempt from failing again.
        """
        faults = self._faults
        with faults.lock:
            new_rate = faults.failure_rate if failure_rate is None else failure_rate
            new_delay = faults.delay if delay is None else delay
            self._validate(new_rate, new_delay)
            faults.failure_rate, faults.delay = new_rate, new_delay
            if seed is not None:
                faults.rng = random.Random(seed)

    def stats(self) -> dict[str, OperationStats]:
        """Return a copy of the counts per batch call (``kinesis.PutRecords`` ...)."""
        with self._faults.lock:
            return {name: OperationStats(**vars(s)) for name, s in self._faults.stats.items()}

    def start(self) -> Self:
        """Serve in a daemon thread; returns ``self``."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),  # poll interval: how long stop() may wait
            name=f"fault-http-proxy-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _delay(self) -> float:
        return self._faults.delay

    def _choose(self, call: _Call) -> list[int]:
        return self._faults.choose(call)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, *, proxy: FaultHttpProxy) -> None:
        super().__init__(address, handler)
        self.proxy = proxy


class _ProxyHandler(BaseHTTPRequestHandler):
    """Relays one client connection (keep-alive) over one upstream connection."""

    protocol_version = "HTTP/1.1"
    server: _ProxyServer
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests would drown in access logs."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes) -> http.client.HTTPResponse:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):  # the server may have closed an idle keep-alive connection
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.server.proxy.upstream)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                return self._upstream.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        if delay := proxy._delay():
            time.sleep(delay)
        target = self.headers.get("X-Amz-Target", "")
        api = next((a for a in _APIS if a.matches(self.command, self.path, target)), None)
        if api is None:
            self._relay(self._forward(body))
            return
        call = api.parse(body, self.path)
        failed = proxy._choose(call)
        if not failed:
            self._relay(self._forward(body))
            return
        failed_set = set(failed)
        kept = [i for i in range(len(call.entries)) if i not in failed_set]
        upstream: Any = None
        response = None
        if kept:
            response = self._forward(api.request(call, kept))
            raw = response.read()
            if response.status != 200:
                self._reply(response.status, raw, response.getheaders())
                return
            upstream = json.loads(raw)
        merged = json.dumps(api.response(call, upstream, failed)).encode()
        headers = response.getheaders() if response else [("Content-Type", api.content_type)]
        self._reply(200, merged, headers)

    def _reply(self, status: int, body: bytes, headers: Sequence[tuple[str, str]]) -> None:
        self.send_response(status)
        for key, value in headers:
            lower = key.lower()
            if lower == "x-amz-crc32":  # botocore checks it against the body
                value = str(zlib.crc32(body))
            if lower not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """Pass a response through, streaming it (event streams may last long)."""
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        length = response.getheader("Content-Length")
        no_body = self.command == "HEAD" or response.status in (204, 304)
        if no_body or length is not None:
            self.send_header("Content-Length", "0" if no_body else length or "0")
            self.end_headers()
            if not no_body:
                while chunk := response.read(65536):
                    self.wfile.write(chunk)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := response.read1(65536):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()


# --- the TCP proxy -------------------------------------------------------------------


@dataclass(eq=False)
class _Link:
    """One relayed connection: the client's socket, the upstream's, directions still open."""

    client: socket.socket
    upstream: socket.socket
    open_directions: int = 2


class TcpProxy:
    """A TCP relay on 127.0.0.1 to one upstream, with outages on command.

    - :meth:`delay`: hold every chunk relayed (both directions) for some seconds.
    - :meth:`cut`: reset every open connection now; new connections are still accepted.
    - :meth:`refuse`: cut, and close the listening port so new connections are refused.
    - :meth:`restore`: no delay, listening again on the same port.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._latency = 0.0
        self._listener: socket.socket | None = None
        self._port = port
        self.accepted = 0
        """Connections accepted and relayed so far."""

    @property
    def port(self) -> int:
        """The port clients connect to (stable across :meth:`refuse`/:meth:`restore`)."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` of the proxy."""
        return f"{HOST}:{self._port}"

    @property
    def open_connections(self) -> int:
        """Connections being relayed now."""
        with self._lock:
            return len(self._links)

    def start(self) -> Self:
        """Start listening and relaying; returns ``self``."""
        self._listen()
        return self

    def stop(self) -> None:
        """Close the port and every connection."""
        self.refuse()

    def delay(self, seconds: float) -> None:
        """Add ``seconds`` of latency to every chunk relayed from now on (0 to clear)."""
        if seconds < 0:
            raise ValueError(f"delay must not be negative, not {seconds}")
        self._latency = seconds

    def cut(self) -> None:
        """Reset every open connection (both sides see a connection reset)."""
        with self._lock:
            links, self._links = self._links, set()
        for link in links:
            _reset(link.client)
            _reset(link.upstream)

    def refuse(self) -> None:
        """Cut open connections and stop listening: new connections are refused."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not,
            # and the port would keep accepting.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.cut()

    def restore(self) -> None:
        """Clear the delay and listen again if refusing."""
        self._latency = 0.0
        if self._listener is None:
            self._listen()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self._port))
        listener.listen(128)
        self._port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(
            target=self._accept, args=(listener,), name=f"tcp-proxy-{self._port}", daemon=True
        ).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by refuse() or stop()
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            link = _Link(client, upstream)
            with self._lock:
                if self._listener is not listener:  # refused meanwhile
                    _reset(client)
                    _reset(upstream)
                    return
                self._links.add(link)
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(link, source, sink), daemon=True).start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                if latency := self._latency:
                    time.sleep(latency)
                sink.sendall(chunk)
            with self._lock:
                cut = link not in self._links
            if not cut:  # an orderly end from the peer; after a cut, the reset is on its way
                sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # reset by cut(), or by either peer
        with self._lock:
            link.open_directions -= 1
            last = link.open_directions == 0 and link in self._links
            if last:
                self._links.discard(link)
        if last:
            link.client.close()
            link.upstream.close()


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` so that the peer gets a reset, not an orderly end.

    A pump thread may be blocked in ``recv`` on ``sock``; ``close()`` alone would neither wake it
    nor release the socket (the kernel keeps it open until that call returns), so the peer would
    see nothing at all: an idle connection would survive the "cut". ``shutdown(SHUT_RD)`` wakes
    the reader without sending anything; the reset goes out when the last reference is closed.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    sock.close()
