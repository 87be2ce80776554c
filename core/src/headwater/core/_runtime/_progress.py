"""A running job's progress on stderr, and its summary when it ends.

On a terminal (with rich installed) one display updates in place: per operator, in pipeline
order, the records in and out, the rate, the share of time blocked by backpressure, and for a
bounded source with a known size a bar with percentage and ETA; above it the job's status,
checkpoint count and last checkpoint duration, and restarts. Elsewhere (a pipe, a log, ``headwater
run --no-progress``) the same numbers come as a plain line every few seconds. Both end with a
summary table. Everything is read from the job's :class:`JobClient` (metrics, counters).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from headwater.core._console import format_count, plain_table, rich_console, rich_table
from headwater.core._graph import JobGraph, NodeKind

if TYPE_CHECKING:
    from headwater.core._runtime._executor import JobClient

__all__ = ["PROGRESS_ENV", "JobProgress"]

PROGRESS_ENV = "HEADWATER_PROGRESS"
"""Set by ``headwater run``: ``1`` shows progress (live on a terminal), ``plain`` plain lines only,
``0`` nothing."""

LIVE_INTERVAL_S = 0.5
PLAIN_INTERVAL_S = 2.0

_HEADERS = ("operator", "parallelism", "records in", "records out", "rate/s", "backpressure")


@dataclass
class _Operator:
    name: str
    parallelism: int
    expected: int | None
    """A bounded source's size, when it knows it."""


def _operators(graph: JobGraph) -> list[_Operator]:
    """The operators in pipeline order (sources first), one row per distinct name."""
    rows: dict[str, _Operator] = {}
    for vertex in graph.vertices:
        for t in vertex.chain:
            if t.name in rows:
                continue
            expected = None
            if t.kind is NodeKind.SOURCE:
                expected = getattr(t.payload[0], "expected_records", None)
            rows[t.name] = _Operator(t.name, vertex.parallelism, expected)
    return list(rows.values())


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


class JobProgress:
    """Shows one job's progress while it runs (a background task) and its summary at :meth:`finish`."""

    def __init__(self, client: JobClient, graph: JobGraph, *, stream: TextIO | None = None) -> None:
        self._client = client
        self._stream = stream if stream is not None else sys.stderr
        self._operators = _operators(graph)
        self._started = time.monotonic()
        self._previous: tuple[float, dict[str, tuple[float, float]]] = (self._started, {})
        self._rates: dict[str, tuple[float, float | None]] = {}
        console = None
        if os.environ.get(PROGRESS_ENV) != "plain":
            console = rich_console(self._stream)
        self._console = console
        self._live: Any = None
        if console is not None:
            from rich.live import Live

            self._live = Live(self._render(), console=console, auto_refresh=False, transient=True)
            self._live.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="job progress")

    async def _run(self) -> None:
        interval = LIVE_INTERVAL_S if self._live is not None else PLAIN_INTERVAL_S
        while True:
            await asyncio.sleep(interval)
            self._sample()
            if self._live is not None:
                self._live.update(self._render(), refresh=True)
            else:
                self._stream.write(self._plain_line() + "\n")
                self._stream.flush()

    def _sample(self) -> None:
        """Rates (records out per second) and backpressure since the previous sample."""
        now = time.monotonic()
        then, previous = self._previous
        elapsed = max(now - then, 1e-9)
        metrics = self._client.metrics()
        current: dict[str, tuple[float, float]] = {}
        for op in self._operators:
            values = metrics.get(op.name, {})
            out = float(values.get("numRecordsOut") or 0)
            blocked = values.get("accumulatedBackPressuredTimeMs")
            current[op.name] = (out, float(blocked or 0))
            before_out, before_blocked = previous.get(op.name, (0.0, 0.0))
            share = None
            if blocked is not None:
                share = (float(blocked) - before_blocked) / (elapsed * 1000 * op.parallelism)
            self._rates[op.name] = ((out - before_out) / elapsed, share)
        self._previous = (now, current)

    def _cells(self, op: _Operator, values: dict[str, Any]) -> tuple[str, ...]:
        rate, blocked = self._rates.get(op.name, (0.0, None))
        return (
            op.name,
            str(op.parallelism),
            format_count(values.get("numRecordsIn")),
            format_count(values.get("numRecordsOut")),
            f"{rate:,.0f}",
            "-" if blocked is None else f"{min(max(blocked, 0.0), 1.0):.0%}",
        )

    def _bar(self, op: _Operator, values: dict[str, Any]) -> tuple[int, int, str] | None:
        """``(done, total, "45%, ETA 0:00:05")`` for a source of known size."""
        if op.expected is None:
            return None
        done = int(values.get("numRecordsOut") or 0)
        total = max(op.expected, 1)
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _clock((total - done) / rate) if rate > 0 and done < total else "-"
        return done, total, f"{min(done / total, 1.0):.0%}, ETA {eta}"

    def _headline(self) -> str:
        client = self._client
        return (
            f"job '{client.job_name}' {client.status.value} {_clock(time.monotonic() - self._started)}"
            f" | checkpoints {client.checkpoints} (last {_duration(client.last_checkpoint_duration_s)})"
            f" | restarts {client.restarts}"
        )

    def _plain_line(self) -> str:
        metrics = self._client.metrics()
        parts = []
        for op in self._operators:
            values = metrics.get(op.name, {})
            cells = self._cells(op, values)
            text = f"{op.name}: {cells[2]} in, {cells[3]} out ({cells[4]}/s"
            text += ")" if cells[5] == "-" else f", backpressure {cells[5]})"
            bar = self._bar(op, values)
            if bar is not None:
                text += f" [{bar[2]}]"
            parts.append(text)
        return f"headwater: {self._headline()} | " + " | ".join(parts)

    def _render(self) -> Any:
        """The headline, a bar per source of known size, and the operators' table (fits 80 columns)."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        metrics = self._client.metrics()
        parts: list[Any] = [Text(self._headline())]
        bars = Table.grid(padding=(0, 1))
        table = Table(header_style="bold")
        columns = (_HEADERS[0], *_HEADERS[2:])  # the parallelism is in the summary
        for i, header in enumerate(columns):
            table.add_column(header, justify="right" if i else "left")
        for op in self._operators:
            values = metrics.get(op.name, {})
            bar = self._bar(op, values)
            if bar is not None:
                done, total, text = bar
                bars.add_row(
                    op.name,
                    ProgressBar(total=total, completed=done, width=30),
                    f"{done:,}/{total:,} {text}",
                )
            cells = self._cells(op, values)
            table.add_row(cells[0], *cells[2:])
        if bars.row_count:
            parts.append(bars)
        parts.append(table)
        return Group(*parts)

    def finish(self) -> None:
        """Stop the display and print the job's summary table (called once, as the job ends)."""
        self._task.cancel()
        if self._live is not None:
            self._live.stop()
        self._sample()
        metrics = self._client.metrics()
        rows = [self._cells(op, metrics.get(op.name, {}))[:4] for op in self._operators]
        client = self._client
        title = (
            f"job '{client.job_name}' {client.status.value} after "
            f"{_duration(time.monotonic() - self._started)}: {client.checkpoints} checkpoint(s) "
            f"(last {_duration(client.last_checkpoint_duration_s)}), {client.restarts} restart(s)"
        )
        if self._console is not None:
            self._console.print(title)
            self._console.print(rich_table(_HEADERS[:4], rows, title=None))
            return
        self._stream.write(f"headwater: {title}\n{plain_table(_HEADERS[:4], rows, indent='  ')}\n")
        self._stream.flush()
