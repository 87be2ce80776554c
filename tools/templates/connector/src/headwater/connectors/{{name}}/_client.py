"""The example system and its client: replace the calls to it with {{title}}'s own client.

The template's source and sink run against this example so that they work (and pass their tests)
as generated. The example is a partitioned log in a local directory (the ``address``): a log is a
directory with one file per partition, each record one line ``<timestamp ms> <payload, base64>``,
and a record's position is its byte offset. It keeps its data in files rather than in memory so
that jobs in other processes (the kill tests) see the same log. An address ``DIR#latency=S``
makes every read take ``S`` seconds more, like a network round trip (the tests read slowly
enough to stop a job mid-log).

What {{title}}'s client must offer the source and the sink in its place: the splits to read (here
the partitions), reading a split from a position in batches (``read``), where a bounded read ends
(``end``), and writing a batch (``append``). Delete this module when the connector uses the real
client.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from headwater.core import FatalError

__all__ = ["ExampleClient", "ExampleRecord"]


@dataclass(frozen=True, slots=True)
class ExampleRecord:
    """One record read from the example log."""

    payload: bytes
    timestamp: int
    """When it was appended (epoch ms): its event time unless a watermark strategy assigns one."""
    position: int
    """Its byte offset in the partition."""
    next_position: int
    """The position of the record after it."""


class ExampleClient:
    """The example system's client (an asyncio client, as most clients of real systems are)."""

    def __init__(self, address: str) -> None:
        directory, _, latency = address.partition("#latency=")
        self._root = Path(directory)
        self._latency = float(latency or 0)

    def _file(self, log: str, partition: int) -> Path:
        return self._root / log / f"{partition}.log"

    async def create_log(self, log: str, partitions: int) -> None:
        """Create ``log`` with ``partitions`` empty partitions (an existing one is kept)."""
        for partition in range(partitions):
            path = self._file(log, partition)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

    async def partitions(self, log: str) -> int:
        """The number of partitions of ``log``."""
        directory = self._root / log
        if not directory.is_dir():
            raise FatalError(f"the log {log!r} does not exist at {self._root}")
        return len(list(directory.glob("*.log")))

    async def end(self, log: str, partition: int) -> int:
        """The position after the last record of a partition (where a bounded read stops)."""
        return self._file(log, partition).stat().st_size

    async def append(self, log: str, partition: int, payloads: Sequence[bytes]) -> None:
        """Append records (in one write, so a killed writer leaves no partial batch behind)."""
        now = int(time.time() * 1000)
        lines = b"".join(b"%d %s\n" % (now, base64.b64encode(p)) for p in payloads)
        with self._file(log, partition).open("ab") as file:
            file.write(lines)

    async def read(
        self, log: str, partition: int, position: int, max_records: int, stop: int | None
    ) -> list[ExampleRecord]:
        """Up to ``max_records`` records from ``position`` (and before ``stop``, if given)."""
        if self._latency:
            await asyncio.sleep(self._latency)
        with self._file(log, partition).open("rb") as file:
            file.seek(position)
            records: list[ExampleRecord] = []
            while len(records) < max_records and (stop is None or position < stop):
                line = file.readline()
                if not line.endswith(b"\n"):  # nothing more (or a line still being written)
                    break
                timestamp, _, payload = line.rstrip(b"\n").partition(b" ")
                end = position + len(line)
                records.append(
                    ExampleRecord(base64.b64decode(payload), int(timestamp), position, end)
                )
                position = end
        return records

    async def close(self) -> None:
        """Release the connection (the example has none)."""
