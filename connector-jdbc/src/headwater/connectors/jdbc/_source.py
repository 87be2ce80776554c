"""The JDBC source: a bounded scan in parallel key ranges, or an unbounded poll of new rows.

Example::

    from headwater.connectors.jdbc import JdbcSource, JdbcSourceOptions

    rows = env.from_source(JdbcSource(JdbcSourceOptions(
        url="postgresql+psycopg://app@db/shop", table="orders", column="id", num_partitions=8,
    )))

Each split is a range of ``column``; it is read in pages of ``fetch_size`` rows ordered by
``column`` (keyset pagination: ``column > last key read``), so a checkpoint records the last key
emitted and a restored job resumes inside the split. ``column`` must therefore be unique and not
null (a primary key or a unique index); otherwise rows sharing a key across a page boundary are
skipped.

Unbounded mode has one split with no upper bound whose position is a high-water mark; new rows are
found when their ``column`` is above it. Rows committed out of ``column`` order (concurrent writers
with a sequence) can be missed: poll a column that grows in commit order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from headwater.connectors.jdbc._database import connect, reflect_table
from headwater.connectors.jdbc._errors import JdbcError
from headwater.connectors.jdbc._options import JdbcSourceOptions
from headwater.core import (
    Boundedness,
    InputStatus,
    JsonSerializer,
    ReaderOutput,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)
from sqlalchemy import Engine, Select, Table, func, select, text

__all__ = ["JdbcSource", "JdbcSplit"]

Key = int | float | Decimal | dt.datetime | dt.date
"""A value of the split column."""
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class JdbcSplit:
    """A range of the split column: ``lower <= column < upper`` (``<=`` when ``upper_inclusive``).

    ``last_key`` is the last key emitted; reading resumes above it. ``None`` bounds are open.
    """

    split_id: str
    lower: Key | None
    upper: Key | None
    upper_inclusive: bool = False
    last_key: Key | None = None


def _encode_key(key: Key | None) -> Any:
    if isinstance(key, dt.datetime):
        return {"datetime": key.isoformat()}
    if isinstance(key, dt.date):
        return {"date": key.isoformat()}
    if isinstance(key, Decimal):
        return {"decimal": str(key)}
    return key


def _decode_key(data: Any) -> Key | None:
    if isinstance(data, dict):
        if "datetime" in data:
            return dt.datetime.fromisoformat(data["datetime"])
        if "date" in data:
            return dt.date.fromisoformat(data["date"])
        return Decimal(data["decimal"])
    if data is None or isinstance(data, int | float):
        return data
    raise TypeError(f"not a split key: {data!r}")


def _split_to_json(split: JdbcSplit) -> Any:
    return [
        split.split_id,
        _encode_key(split.lower),
        _encode_key(split.upper),
        split.upper_inclusive,
        _encode_key(split.last_key),
    ]


def _split_from_json(_version: int, data: Any) -> JdbcSplit:
    split_id, lower, upper, inclusive, last = data
    return JdbcSplit(split_id, _decode_key(lower), _decode_key(upper), inclusive, _decode_key(last))


SPLIT_SERIALIZER: VersionedSerializer[JdbcSplit] = JsonSerializer(
    version=1, to_json=_split_to_json, from_json=_split_from_json
)
ENUMERATOR_SERIALIZER: VersionedSerializer[list[JdbcSplit] | None] = JsonSerializer(
    version=1,
    to_json=lambda splits: None if splits is None else [_split_to_json(s) for s in splits],
    from_json=lambda v, data: None if data is None else [_split_from_json(v, d) for d in data],
)


def key_ranges(lower: Key, upper: Key, parts: int) -> list[JdbcSplit]:
    """``[lower, upper]`` cut into at most ``parts`` splits of about equal width."""
    if isinstance(lower, int) and isinstance(upper, int):
        size = upper - lower + 1
        bounds = [lower + size * i // parts for i in range(parts + 1)]
        return [
            JdbcSplit(str(i), bounds[i], bounds[i + 1])
            for i in range(parts)
            if bounds[i] < bounds[i + 1]
        ]
    step: Any = (upper - lower) / parts  # type: ignore[operator]
    cuts = [lower + step * i for i in range(parts)] + [upper]
    return [
        JdbcSplit(str(i), cuts[i], cuts[i + 1], upper_inclusive=i == parts - 1)
        for i in range(parts)
        if i == parts - 1 or cuts[i] < cuts[i + 1]
    ]


class _TableScan:
    """Blocking queries over the source table (run them on the job's thread pool)."""

    def __init__(self, options: JdbcSourceOptions) -> None:
        self._options = options
        self._engine: Engine | None = None
        self._table: Table

    def _open(self) -> Engine:
        if self._engine is None:
            options = self._options
            engine = connect(options.url, options.connect_args, pool_size=1)
            with engine.connect() as connection:
                self._table = reflect_table(connection, options.table, options.db_schema)
            if options.column not in self._table.c:
                engine.dispose()
                raise JdbcError(
                    f"jdbc source: table '{options.table}' has no column '{options.column}'"
                )
            self._engine = engine
        return self._engine

    def _filtered(self, query: Select[Any]) -> Select[Any]:
        return query if self._options.where is None else query.where(text(self._options.where))

    def bounds(self) -> tuple[Key | None, Key | None]:
        """The smallest and largest value of the split column (``None`` for an empty table)."""
        engine = self._open()
        column = self._table.c[self._options.column]
        with engine.connect() as connection:
            low, high = connection.execute(
                self._filtered(select(func.min(column), func.max(column)))
            ).one()
        return low, high

    def page(self, split: JdbcSplit) -> list[Row]:
        """The next ``fetch_size`` rows of ``split`` after its ``last_key``, in key order."""
        engine = self._open()
        options, table = self._options, self._table
        column = table.c[options.column]
        columns = [table.c[c] for c in options.columns] if options.columns else list(table.c)
        query = select(*columns)
        if split.last_key is not None:
            query = query.where(column > split.last_key)
        elif split.lower is not None:
            query = query.where(column >= split.lower)
        if split.upper is not None:
            query = query.where(
                column <= split.upper if split.upper_inclusive else column < split.upper
            )
        query = self._filtered(query).order_by(column).limit(options.fetch_size)
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def close(self) -> None:
        """Release the connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class _JdbcEnumerator(SplitEnumerator[JdbcSplit, list[JdbcSplit] | None]):
    """Computes the splits once and hands them out on request.

    The bounds come from the options or the column's min/max. State: the splits not yet assigned
    (``None`` before they were computed).
    """

    def __init__(
        self,
        options: JdbcSourceOptions,
        context: SplitEnumeratorContext[JdbcSplit],
        unassigned: list[JdbcSplit] | None,
    ) -> None:
        self._options = options
        self._context = context
        self._unassigned: deque[JdbcSplit] | None = (
            None if unassigned is None else deque(unassigned)
        )
        self._waiting: list[int] = []

    async def start(self) -> None:
        """Compute the splits of a fresh job."""
        if self._unassigned is not None:
            return
        options = self._options
        if options.poll_interval is not None:
            splits = [JdbcSplit("poll", None, None, last_key=options.start_after)]
        else:
            low: Key | None = options.lower_bound
            high: Key | None = options.upper_bound
            if low is None or high is None:
                scan = _TableScan(options)
                try:
                    found = await self._context.run_blocking(scan.bounds)
                finally:
                    await self._context.run_blocking(scan.close)
                low = found[0] if low is None else low
                high = found[1] if high is None else high
            parts = options.num_partitions or self._context.parallelism
            splits = [] if low is None or high is None else key_ranges(low, high, parts)
        self._unassigned = deque(splits)
        waiting, self._waiting = self._waiting, []
        for subtask in waiting:
            self.handle_split_request(subtask)

    def handle_split_request(self, subtask_index: int) -> None:
        """Assign the next split, or tell the reader there are no more."""
        if self._unassigned is None:
            self._waiting.append(subtask_index)
        elif self._unassigned:
            self._context.assign_splits({subtask_index: [self._unassigned.popleft()]})
        else:
            self._context.signal_no_more_splits(subtask_index)

    def add_reader(self, subtask_index: int) -> None:
        """Readers ask for splits themselves."""

    def add_splits_back(self, splits: Sequence[JdbcSplit], subtask_index: int) -> None:
        """Splits of a failed reader go to the front of the queue."""
        if self._unassigned is None:
            self._unassigned = deque()
        self._unassigned.extendleft(reversed(splits))

    def snapshot_state(self, checkpoint_id: int) -> list[JdbcSplit] | None:
        """The unassigned splits."""
        return None if self._unassigned is None else list(self._unassigned)


class _JdbcReader(SourceReader[Row, JdbcSplit]):
    """Reads its splits one after another, a page at a time.

    The query runs on the thread pool while ``poll_next`` returns at once.
    """

    def __init__(self, options: JdbcSourceOptions, context: SourceReaderContext) -> None:
        self._options = options
        self._context = context
        self._scan = _TableScan(options)
        self._splits: deque[JdbcSplit] = deque()
        self._current: JdbcSplit | None = None
        self._fetch: asyncio.Task[list[Row]] | None = None
        self._no_more = False
        self._requested = False
        self._not_before = 0.0
        self._available: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rows_read = context.metric_group.counter("numRecordsInFromDatabase")

    async def start(self) -> None:
        """Ask for a first split unless some were restored."""
        if not self._splits:
            self._request()

    def _request(self) -> None:
        self._requested = True
        self._context.send_split_request()

    def _signal(self, *_: Any) -> None:
        if not self._available.done():
            self._available.set_result(None)

    def add_splits(self, splits: Sequence[JdbcSplit]) -> None:
        """Queue assigned or restored splits."""
        self._splits.extend(splits)
        self._requested = False
        self._signal()

    def notify_no_more_splits(self) -> None:
        """End once the queued splits are read."""
        self._no_more = True
        self._signal()

    def is_available(self) -> asyncio.Future[None]:
        """Done when a page has arrived, a split was assigned or the poll interval passed."""
        if self._available.done():
            self._available = asyncio.get_running_loop().create_future()
        return self._available

    def poll_next(self, output: ReaderOutput[Row]) -> InputStatus:
        """Emit a fetched page, or start fetching the next one."""
        fetch = self._fetch
        if fetch is not None:
            if not fetch.done():
                return InputStatus.NOTHING_AVAILABLE
            self._fetch = None
            rows = fetch.result()  # re-raises a failed query on the task
            self._emit(rows, output)
            return InputStatus.MORE_AVAILABLE
        if self._current is None:
            if not self._splits:
                if self._no_more:
                    return InputStatus.END_OF_INPUT
                if not self._requested:
                    self._request()
                return InputStatus.NOTHING_AVAILABLE
            self._current = self._splits.popleft()
        wait = self._not_before - time.monotonic()
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._signal)
            return InputStatus.NOTHING_AVAILABLE
        self._fetch = asyncio.ensure_future(
            self._context.run_blocking(self._scan.page, self._current)
        )
        self._fetch.add_done_callback(self._signal)
        return InputStatus.NOTHING_AVAILABLE

    def _emit(self, rows: list[Row], output: ReaderOutput[Row]) -> None:
        split = self._current
        assert split is not None
        if rows:
            output.collect_batch(rows)
            self._rows_read.inc(len(rows))
            split = self._current = dataclasses.replace(
                split, last_key=rows[-1][self._options.column]
            )
        if len(rows) < self._options.fetch_size:
            if self._options.poll_interval is None:
                self._current = None  # the split is done
                if not self._splits and not self._no_more:
                    self._request()
            else:
                self._not_before = time.monotonic() + self._options.poll_interval.total_seconds()

    def snapshot_state(self, checkpoint_id: int) -> list[JdbcSplit]:
        """The current split at the last key emitted, and the queued ones."""
        current = [self._current] if self._current is not None else []
        return current + list(self._splits)

    async def close(self) -> None:
        """Cancel a running fetch and release the connections."""
        if self._fetch is not None:
            self._fetch.cancel()
        await self._context.run_blocking(self._scan.close)


class JdbcSource(Source[Row, JdbcSplit, list[JdbcSplit] | None]):
    """Reads rows (as dicts) from a SQL table; see :class:`JdbcSourceOptions` for the two modes."""

    def __init__(self, options: JdbcSourceOptions) -> None:
        if not isinstance(options, JdbcSourceOptions):
            raise TypeError(f"JdbcSource: expected JdbcSourceOptions, got {type(options).__name__}")
        self.options = options

    def __repr__(self) -> str:
        return f"JdbcSource(url={self.options.url!r}, table={self.options.table!r})"

    @property
    def boundedness(self) -> Boundedness:
        """Bounded unless ``poll_interval`` is set."""
        if self.options.poll_interval is None:
            return Boundedness.BOUNDED
        return Boundedness.CONTINUOUS_UNBOUNDED

    def create_enumerator(
        self, context: SplitEnumeratorContext[JdbcSplit]
    ) -> SplitEnumerator[JdbcSplit, list[JdbcSplit] | None]:
        """An enumerator that computes the splits when it starts."""
        return _JdbcEnumerator(self.options, context, None)

    def restore_enumerator(
        self, context: SplitEnumeratorContext[JdbcSplit], state: list[JdbcSplit] | None
    ) -> SplitEnumerator[JdbcSplit, list[JdbcSplit] | None]:
        """An enumerator with the unassigned splits of a checkpoint."""
        return _JdbcEnumerator(self.options, context, state)

    def create_reader(self, context: SourceReaderContext) -> SourceReader[Row, JdbcSplit]:
        """A reader for one subtask."""
        return _JdbcReader(self.options, context)

    def split_serializer(self) -> VersionedSerializer[JdbcSplit]:
        """Splits with their positions, as versioned JSON."""
        return SPLIT_SERIALIZER

    def enumerator_state_serializer(self) -> VersionedSerializer[list[JdbcSplit] | None]:
        """The unassigned splits, as versioned JSON."""
        return ENUMERATOR_SERIALIZER
