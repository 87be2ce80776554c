"""Async sink base against a local HTTP endpoint: throughput and recovery after throttling.

The endpoint (asyncio, 127.0.0.1, its own process) answers each request after 20 ms and accepts up
to 500 entries. With max_in_flight_requests=8 the theoretical ceiling is 8 x 500 / 20 ms = 200,000
entries/s; the reachable limit, measured in the same run, is a plain asyncio loop: 8 workers, one
connection each, converting and posting batches of 500 with the same client code.

Phase 1 sends 200,000 entries through the raw loop, then through the sink. Phase 2 sends through
the sink for 9 s while the endpoint refuses every other entry from 1 s to 3 s, and measures how
long after the throttling ends the throughput (200 ms windows) is back above 0.8 of the ceiling.
After each run the endpoint reports what it accepted: every entry sent exactly once (count and
sum of the ids), on the raw side as on the sink's. ``recovery_s`` is null when throughput does not
get back within 6 s (a machine loaded by other work). Prints {"rps", "raw_rps", "raw_ratio",
"ceiling_rps", "ratio", "recovery_s"} (raw_ratio: sink / raw loop; ratio: sink / ceiling).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
from headwater.connectors.base import AsyncSinkOptions, AsyncSinkWriter, SubmitResult
from headwater.core._metrics import MetricRegistry

DELAY = 0.020
BATCH = 500
IN_FLIGHT = 8
N = 200_000
CEILING = IN_FLIGHT * BATCH / DELAY


class Endpoint:
    """Runs in its own process so its CPU does not compete with the writer's event loop."""

    def __init__(self) -> None:
        self.throttle = False
        self.accepted = 0
        self.id_sum = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                if head.startswith(b"POST /throttle/"):
                    self.throttle = head.startswith(b"POST /throttle/on")
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    continue
                if head.startswith(b"POST /stats"):  # what was accepted since the last call
                    stats = orjson.dumps({"accepted": self.accepted, "id_sum": self.id_sum})
                    self.accepted = self.id_sum = 0
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(stats) + stats
                    )
                    continue
                lines = body.splitlines()
                count = len(lines)
                await asyncio.sleep(DELAY)
                rejected = list(range(1, count, 2)) if self.throttle else []
                refused = set(rejected)
                taken = [
                    orjson.loads(line)["id"] for i, line in enumerate(lines) if i not in refused
                ]
                self.accepted += len(taken)
                self.id_sum += sum(taken)
                payload = orjson.dumps({"rejected": rejected})
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


class Client:
    """A minimal HTTP/1.1 client keeping idle keep-alive connections (one per concurrent request)."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: bytes, body: bytes) -> Any:
        conn = (
            self._idle.pop()
            if self._idle
            else await asyncio.open_connection("127.0.0.1", self._port)
        )
        reader, writer = conn
        writer.write(b"POST %s HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % (path, len(body)) + body)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        answer = orjson.loads(await reader.readexactly(length))
        self._idle.append(conn)
        return answer

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def convert(i: int) -> bytes:
    return orjson.dumps({"id": i})


class HttpWriter(AsyncSinkWriter[int, bytes]):
    def __init__(self, context: Any, port: int, options: AsyncSinkOptions) -> None:
        super().__init__(context, element_converter=convert, options=options)
        self.client = Client(port)
        self.accepted: list[tuple[float, int]] = []

    async def submit_request_entries(self, entries: list[bytes]) -> SubmitResult[bytes]:
        answer = await self.client.post(b"/entries", b"\n".join(entries) + b"\n")
        rejected: Sequence[int] = answer["rejected"]
        self.accepted.append((time.monotonic(), len(entries) - len(rejected)))
        if rejected:
            return SubmitResult.retry([entries[i] for i in rejected])
        return SubmitResult.complete()

    def size_in_bytes(self, entry: bytes) -> int:
        return len(entry)

    async def close(self) -> None:
        await super().close()
        self.client.close()


class _Context:
    subtask_index = 0
    parallelism = 1
    attempt = 0
    restored_checkpoint_id = None

    def __init__(self) -> None:
        self.metric_group = MetricRegistry().group({"operator": "bench"})


OPTIONS = AsyncSinkOptions(
    max_batch_size=BATCH,
    max_in_flight_requests=IN_FLIGHT,
    max_buffered_requests=20 * BATCH,
    max_time_in_buffer=timedelta(milliseconds=50),
)


async def _check_delivered(port: int, count: int, side: str) -> None:
    """The endpoint accepted the ids ``[0, count)``, each once (count and sum)."""
    control = Client(port)
    stats = await control.post(b"/stats", b"")
    control.close()
    expected = {"accepted": count, "id_sum": count * (count - 1) // 2}
    assert stats == expected, f"{side}: the endpoint accepted {stats}, expected {expected}"


async def _throughput(port: int) -> float:
    writer = HttpWriter(_Context(), port, OPTIONS)
    started = time.monotonic()
    for i in range(0, N, 1000):
        await writer.write_batch(range(i, i + 1000))
    await writer.flush(True)
    elapsed = time.monotonic() - started
    await writer.close()
    await _check_delivered(port, N, "sink")
    return N / elapsed


async def _raw_throughput(port: int) -> float:
    """The limit: 8 workers converting and posting batches of BATCH, no sink base in between."""
    client = Client(port)
    starts = iter(range(0, N, BATCH))

    async def worker() -> None:
        for start in starts:
            body = b"\n".join([convert(i) for i in range(start, start + BATCH)]) + b"\n"
            await client.post(b"/entries", body)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    elapsed = time.monotonic() - started
    client.close()
    await _check_delivered(port, N, "raw loop")
    return N / elapsed


async def _recovery(port: int) -> float | None:
    """Seconds after the throttling ends until a 200 ms window is back at 0.8 of the ceiling;
    ``None`` if that does not happen within 6 s (under load from elsewhere it may not)."""
    writer = HttpWriter(_Context(), port, OPTIONS)
    control = Client(port)
    started = time.monotonic()

    async def throttle() -> float:
        await asyncio.sleep(1.0)
        await control.post(b"/throttle/on", b"")
        await asyncio.sleep(2.0)
        await control.post(b"/throttle/off", b"")
        return time.monotonic()

    throttle_task = asyncio.ensure_future(throttle())
    i = 0
    while time.monotonic() - started < 9.0:
        await writer.write_batch(range(i, i + 1000))
        i += 1000
    await writer.flush(True)
    await writer.close()
    control.close()
    ended = await throttle_task
    await _check_delivered(port, i, "sink under throttling")
    window = 0.2
    t = ended
    while t < ended + 6.0:
        done = sum(n for at, n in writer.accepted if t <= at < t + window)
        if done / window >= 0.8 * CEILING:
            return round(t + window - ended, 3)
        t += 0.05
    return None


def _serve(port_out: Any) -> None:
    async def serve() -> None:
        server = await asyncio.start_server(Endpoint().handle, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


async def _main(port: int) -> dict[str, Any]:
    raw_rps = await _raw_throughput(port)
    rps = await _throughput(port)
    recovery = await _recovery(port)
    return {
        "rps": round(rps),
        "raw_rps": round(raw_rps),
        "raw_ratio": round(rps / raw_rps, 3),
        "ceiling_rps": round(CEILING),
        "ratio": round(rps / CEILING, 3),
        "recovery_s": recovery,
    }


def run() -> dict[str, Any]:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        return asyncio.run(_main(parent.recv()))
    finally:
        server.kill()
        server.join()
