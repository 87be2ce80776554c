"""The Cassandra source: a bounded read of a table in token-range splits, resumable inside a split.

Example::

    from headwater.connectors.cassandra import CassandraSource, CassandraSourceOptions

    rows = env.from_source(CassandraSource(CassandraSourceOptions(
        keyspace="shop", table="orders", columns=("id", "total"),
    )))

The enumerator cuts the partitioner's ring (Murmur3 or Random) into ranges (``split_count``, or
sized from ``system.size_estimates``) and hands them out one at a time to readers that ask. A
reader reads its split with ``SELECT ... WHERE token(pk) > ? AND token(pk) <= ?`` in pages of
``fetch_size`` rows (driver paging, ``execute_async`` bridged to asyncio). The position of a split
is the paging state of the page being emitted and how many of its rows were emitted, so a
restored job asks for that page again and skips those rows: it resumes inside the split, and
every row is emitted once.

Built on connector-base's reader: :class:`_TokenRangeSplitReader` (a ``SplitReader``),
:class:`_RowEmitter` (a ``RecordEmitter``) and :class:`_CassandraReader` (a ``SourceReaderBase``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from headwater.connectors.base import (
    ErrorClass,
    RecordEmitter,
    RecordsBySplit,
    RetryPolicy,
    SourceReaderBase,
    SplitFetcherManager,
    SplitReader,
    retry,
)
from headwater.connectors.cassandra._errors import (
    CassandraConnectionError,
    CassandraUnavailableError,
    classify,
    server_message,
    with_cassandra_classifier,
)
from headwater.connectors.cassandra._options import CassandraSourceOptions, RowFormat
from headwater.connectors.cassandra._session import (
    Connection,
    aexecute,
    connect,
    consistency_level,
)
from headwater.connectors.cassandra._table import TableInfo, describe_table
from headwater.connectors.cassandra._tokens import (
    PARTITIONERS,
    Ring,
    SizeEstimate,
    split_count,
    token_ranges,
)
from headwater.core import (
    Boundedness,
    JsonSerializer,
    ReaderOutput,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)
from typing_extensions import override

from cassandra.cluster import ResultSet
from cassandra.query import PreparedStatement, dict_factory, named_tuple_factory

__all__ = ["CassandraSource", "CassandraSplit"]

_WHO = "cassandra source"


@dataclass(frozen=True, slots=True)
class CassandraSplit:
    """Tokens ``start < token <= end`` (``>=`` when ``start_inclusive``) of the table's partition key.

    The position: ``paging_state`` requests the page holding the next row to emit (``None``: the
    first page) and ``skip`` rows of that page were emitted already. Checkpointed: keep the format
    backward compatible (bump the serializer version and read the old one).
    """

    split_id: str
    start: int
    end: int
    start_inclusive: bool = False
    paging_state: bytes | None = None
    skip: int = 0


@dataclass(slots=True)
class _SplitState:
    """The mutable position of a split being read (see :class:`CassandraSplit`)."""

    split: CassandraSplit
    paging_state: bytes | None
    skip: int


def _split_to_json(split: CassandraSplit) -> Any:
    return {
        "id": split.split_id,
        "start": str(split.start),  # tokens exceed JSON's safe integers
        "end": str(split.end),
        "start_inclusive": split.start_inclusive,
        "paging_state": None if split.paging_state is None else split.paging_state.hex(),
        "skip": split.skip,
    }


def _split_from_json(_version: int, data: Any) -> CassandraSplit:
    state = data["paging_state"]
    return CassandraSplit(
        split_id=data["id"],
        start=int(data["start"]),
        end=int(data["end"]),
        start_inclusive=bool(data["start_inclusive"]),
        paging_state=None if state is None else bytes.fromhex(state),
        skip=int(data["skip"]),
    )


SPLIT_SERIALIZER: VersionedSerializer[CassandraSplit] = JsonSerializer(
    version=1, to_json=_split_to_json, from_json=_split_from_json
)
ENUMERATOR_SERIALIZER: VersionedSerializer[list[CassandraSplit] | None] = JsonSerializer(
    version=1,
    to_json=lambda splits: None if splits is None else [_split_to_json(s) for s in splits],
    from_json=lambda v, data: None if data is None else [_split_from_json(v, d) for d in data],
)


def _ring(connection: Connection) -> Ring:
    name = connection.cluster.metadata.partitioner
    ring = PARTITIONERS.get(name)
    if ring is None:
        raise CassandraConnectionError(
            f"{_WHO}: the cluster's partitioner {name} cannot be split by token ranges; "
            "supported: Murmur3Partitioner, RandomPartitioner"
        )
    return ring


def _size_estimates(connection: Connection, table: TableInfo) -> list[SizeEstimate]:
    """The node's estimates for ``table``; none where ``system.size_estimates`` is missing (< 2.1.5)."""
    try:
        rows = connection.session.execute(
            "SELECT range_start, range_end, partitions_count, mean_partition_size "
            "FROM system.size_estimates WHERE keyspace_name = %s AND table_name = %s",
            (table.keyspace, table.table),
        )
    except Exception:  # an older server without the table: size by parallelism instead
        return []
    return [
        SizeEstimate(int(r[0]), int(r[1]), int(r[2]), int(r[3]))
        for r in (tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in rows)
    ]


def _plan_splits(options: CassandraSourceOptions, parallelism: int) -> list[CassandraSplit]:
    """Connect, check the table, and cut the ring (blocking: run it on the thread pool)."""
    connection = connect(options.connection, _WHO)
    try:
        table = describe_table(connection.cluster, options.keyspace, options.table, _WHO)
        ring = _ring(connection)
        count = options.split_count
        if count is None:
            count = split_count(
                ring,
                _size_estimates(connection, table),
                options.split_size_in_mb * 1024 * 1024,
                parallelism,
            )
    finally:
        connection.close()
    return [
        CassandraSplit(str(i), r.start, r.end, r.start_inclusive)
        for i, r in enumerate(token_ranges(ring, count))
    ]


class _CassandraEnumerator(SplitEnumerator[CassandraSplit, list[CassandraSplit] | None]):
    """Computes the splits once and hands them out on request (state: the unassigned splits)."""

    def __init__(
        self,
        options: CassandraSourceOptions,
        context: SplitEnumeratorContext[CassandraSplit],
        unassigned: list[CassandraSplit] | None,
    ) -> None:
        self._options = options
        self._context = context
        self._unassigned = None if unassigned is None else deque(unassigned)
        self._waiting: list[int] = []

    @override
    async def start(self) -> None:
        """Compute the splits of a fresh job."""
        if self._unassigned is not None:
            return
        splits = await self._context.run_blocking(
            _plan_splits, self._options, self._context.parallelism
        )
        self._unassigned = deque(splits)
        waiting, self._waiting = self._waiting, []
        for subtask in waiting:
            self.handle_split_request(subtask)

    @override
    def handle_split_request(self, subtask_index: int) -> None:
        """Assign the next split (a sole reader gets them all), or say there are no more.

        A sole reader gets every split at once, so that each split's watermark holds event time
        back from the start, not only once the reader reaches it (ranges at different event-time
        progress would otherwise make the later ones late).
        """
        if self._unassigned is None:
            self._waiting.append(subtask_index)
        elif self._unassigned:
            count = len(self._unassigned) if self._context.parallelism == 1 else 1
            splits = [self._unassigned.popleft() for _ in range(count)]
            self._context.assign_splits({subtask_index: splits})
        else:
            self._context.signal_no_more_splits(subtask_index)

    @override
    def add_reader(self, subtask_index: int) -> None:
        """Readers ask for splits themselves."""

    @override
    def add_splits_back(self, splits: Sequence[CassandraSplit], subtask_index: int) -> None:
        """Splits of a failed reader go to the front of the queue."""
        if self._unassigned is None:
            self._unassigned = deque()
        self._unassigned.extendleft(reversed(splits))

    @override
    def snapshot_state(self, checkpoint_id: int) -> list[CassandraSplit] | None:
        """The unassigned splits."""
        return None if self._unassigned is None else list(self._unassigned)


class _Fetched(NamedTuple):
    """A row and where it is: the paging state of its page and its index in the page."""

    row: Any
    page: bytes | None
    position: int


def _scan_query(options: CassandraSourceOptions, table: TableInfo) -> str:
    columns = ", ".join(options.columns) if options.columns else "*"
    token = f"token({', '.join(table.partition_key)})"
    where = f"{token} {{op}} ? AND {token} <= ?"
    if options.where is not None:
        where += f" AND ({options.where})"
    query = f"SELECT {columns} FROM {options.keyspace}.{options.table} WHERE {where}"
    return query + (" ALLOW FILTERING" if options.allow_filtering else "")


class _TokenRangeSplitReader(SplitReader[_Fetched, CassandraSplit]):
    """Reads its splits one after another, one page per ``fetch``.

    It connects on the job's thread pool at the first fetch; every query is sent with
    ``execute_async`` and awaited through an asyncio future, so the loop never blocks.
    """

    def __init__(
        self,
        options: CassandraSourceOptions,
        run_blocking: Callable[..., Awaitable[Any]],
    ) -> None:
        self._options = options
        self._run_blocking = run_blocking
        self._policy = with_cassandra_classifier(RetryPolicy())
        self._splits: deque[CassandraSplit] = deque()
        self._connection: Connection | None = None
        self._queries: tuple[PreparedStatement, PreparedStatement] | None = None

    @override
    def handle_splits_changes(self, added: Sequence[CassandraSplit]) -> None:
        """Queue the splits (each from its checkpointed position)."""
        self._splits.extend(added)

    @override
    async def fetch(self) -> RecordsBySplit[_Fetched]:
        """The next page of the current split; the split is finished after its last page."""
        if not self._splits:
            return RecordsBySplit()
        split = self._splits[0]
        result = await retry(lambda: self._page(split), self._policy)
        rows = result.current_rows
        page_state = split.paging_state
        elements = [_Fetched(row, page_state, i) for i, row in enumerate(rows)][split.skip :]
        next_state = result.paging_state
        if next_state is None:
            self._splits.popleft()
            return RecordsBySplit({split.split_id: elements}, finished_splits=(split.split_id,))
        self._splits[0] = dataclasses.replace(split, paging_state=next_state, skip=0)
        return RecordsBySplit({split.split_id: elements})

    async def _page(self, split: CassandraSplit) -> ResultSet:
        inclusive, exclusive = await self._prepared()
        query = inclusive if split.start_inclusive else exclusive
        bound = query.bind((split.start, split.end))
        bound.fetch_size = self._options.fetch_size
        assert self._connection is not None
        try:
            return await aexecute(self._connection.session, bound, paging_state=split.paging_state)
        except Exception as exc:
            if classify(exc) is ErrorClass.RETRYABLE:
                raise CassandraUnavailableError(
                    f"{_WHO}: reading split {split.split_id} of "
                    f"{self._options.keyspace}.{self._options.table}: {server_message(exc)}"
                ) from exc
            raise

    async def _prepared(self) -> tuple[PreparedStatement, PreparedStatement]:
        if self._queries is None:
            self._queries = await self._run_blocking(self._connect)
        return self._queries

    def _connect(self) -> tuple[PreparedStatement, PreparedStatement]:
        options = self._options
        factory = (
            named_tuple_factory if options.row_format is RowFormat.NAMED_TUPLE else dict_factory
        )
        if options.record_factory is not None:
            factory = dict_factory
        connection = connect(options.connection, _WHO, row_factory=factory)
        try:
            table = describe_table(connection.cluster, options.keyspace, options.table, _WHO)
            query = _scan_query(options, table)
            inclusive = connection.session.prepare(query.replace("{op}", ">="))
            exclusive = connection.session.prepare(query.replace("{op}", ">"))
        except Exception:
            connection.close()
            raise
        level = consistency_level(options.consistency)
        inclusive.consistency_level = exclusive.consistency_level = level
        self._connection = connection
        return inclusive, exclusive

    @override
    def close(self) -> None:
        """Shut the driver down on a thread of its own (it joins the driver's threads)."""
        if self._connection is not None:
            threading.Thread(target=self._connection.close, daemon=True).start()
            self._connection = None


class _RowEmitter(RecordEmitter[_Fetched, Any, _SplitState]):
    """Emits rows (as dicts, named tuples or built by ``record_factory``) and moves the split past them."""

    def __init__(self, record_factory: Callable[..., Any] | None) -> None:
        self._record_factory = record_factory

    @override
    def emit_record(
        self, element: _Fetched, output: ReaderOutput[Any], split_state: _SplitState
    ) -> None:
        """Emit one row."""
        self.emit_batch((element,), output, split_state)

    @override
    def emit_batch(
        self, elements: Sequence[_Fetched], output: ReaderOutput[Any], split_state: _SplitState
    ) -> None:
        """Emit the rows of one page; the position becomes the row after the last one."""
        if not elements:
            return
        make = self._record_factory
        rows = [e.row for e in elements] if make is None else [make(**e.row) for e in elements]
        output.collect_batch(rows)
        last = elements[-1]
        split_state.paging_state = last.page
        split_state.skip = last.position + 1


class _CassandraReader(SourceReaderBase[_Fetched, Any, CassandraSplit, _SplitState]):
    """One fetcher (an asyncio task) reading the subtask's splits one page at a time."""

    def __init__(self, options: CassandraSourceOptions, context: SourceReaderContext) -> None:
        super().__init__(
            context,
            SplitFetcherManager(lambda: _TokenRangeSplitReader(options, context.run_blocking)),
            _RowEmitter(options.record_factory),
        )

    @override
    def initialized_state(self, split: CassandraSplit) -> _SplitState:
        """Start at the split's checkpointed position."""
        return _SplitState(split, split.paging_state, split.skip)

    @override
    def to_split(self, split_id: str, state: _SplitState) -> CassandraSplit:
        """The split at the next row to emit."""
        return dataclasses.replace(state.split, paging_state=state.paging_state, skip=state.skip)


class CassandraSource(Source[Any, CassandraSplit, list[CassandraSplit] | None]):
    """Reads a table once (bounded), in parallel token ranges; see :class:`CassandraSourceOptions`."""

    def __init__(self, options: CassandraSourceOptions) -> None:
        if not isinstance(options, CassandraSourceOptions):
            raise TypeError(
                f"CassandraSource: expected CassandraSourceOptions, got {type(options).__name__}"
            )
        self.options = options

    def __repr__(self) -> str:
        return f"CassandraSource(table={self.options.keyspace}.{self.options.table})"

    @property
    def boundedness(self) -> Boundedness:
        """Always bounded: a scan of the table as it is."""
        return Boundedness.BOUNDED

    def create_enumerator(
        self, context: SplitEnumeratorContext[CassandraSplit]
    ) -> SplitEnumerator[CassandraSplit, list[CassandraSplit] | None]:
        """An enumerator that plans the splits when it starts."""
        return _CassandraEnumerator(self.options, context, None)

    def restore_enumerator(
        self,
        context: SplitEnumeratorContext[CassandraSplit],
        state: list[CassandraSplit] | None,
    ) -> SplitEnumerator[CassandraSplit, list[CassandraSplit] | None]:
        """An enumerator with the unassigned splits of a checkpoint."""
        return _CassandraEnumerator(self.options, context, state)

    def create_reader(self, context: SourceReaderContext) -> SourceReader[Any, CassandraSplit]:
        """A reader for one subtask."""
        return _CassandraReader(self.options, context)

    def split_serializer(self) -> VersionedSerializer[CassandraSplit]:
        """Splits with their positions, as versioned JSON."""
        return SPLIT_SERIALIZER

    def enumerator_state_serializer(self) -> VersionedSerializer[list[CassandraSplit] | None]:
        """The unassigned splits, as versioned JSON."""
        return ENUMERATOR_SERIALIZER
