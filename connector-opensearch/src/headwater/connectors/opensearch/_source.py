"""OpenSearchSource: a bounded read of an index, one split per slice of a point-in-time search.

Example::

    from headwater.connectors.opensearch import (
        OpenSearchClientOptions, OpenSearchSource, OpenSearchSourceOptions,
    )

    source = OpenSearchSource(OpenSearchSourceOptions(
        client=OpenSearchClientOptions(hosts=("http://localhost:9200",)),
        index="orders", query={"range": {"total": {"gte": 100}}}, slices=4,
    ))
    orders = env.from_source(source)

The enumerator opens one point in time (PIT) on the index when the job starts and cuts the read
into ``slices`` splits (``slice: {id, max}``). A split is read page by page with ``search_after``
on ``sort``; its state is the sort values of the last document emitted, so a restored job resumes
inside the slice. While the PIT lives (``keep_alive``, renewed by every page) the read is a
consistent snapshot. A job restored after the PIT expired opens a new one and goes on after the
saved sort values, which is exact only when ``sort`` names fields unique together: with the
default ``_shard_doc`` the job fails instead, saying so.

A reader asking for splits gets its share of the slices at once and reads them in turn, a page
each, so its per-split watermarks hold event time at the slowest slice: reading one slice to its
end before the next would let an early slice's event times make a later slice's records late.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from headwater.connectors.base import (
    RecordEmitter,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
    SplitReader,
)
from headwater.connectors.opensearch._client import (
    CountingSerializer,
    Masker,
    create_client,
    open_point_in_time,
    status_of,
    translate,
)
from headwater.connectors.opensearch._options import OpenSearchSourceOptions
from headwater.core import (
    Boundedness,
    ConfigurationError,
    FatalError,
    JsonSerializer,
    ReaderOutput,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)
from opensearchpy import AsyncOpenSearch
from typing_extensions import override

__all__ = ["OpenSearchSource", "SliceSplit"]

T = TypeVar("T")
"""The type of the records the source emits."""

Hit = dict[str, Any]
"""One search hit as the server returns it (``_index``, ``_id``, ``_source``, ``sort``)."""


@dataclass(frozen=True, slots=True)
class SliceSplit:
    """Slice ``slice_id`` of ``slice_max`` of a point-in-time search.

    ``search_after`` holds the sort values of the last document emitted (``None``: from the start).
    """

    split_id: str
    slice_id: int
    slice_max: int
    pit_id: str
    search_after: tuple[Any, ...] | None = None


def _split_to_json(split: SliceSplit) -> Any:
    after = None if split.search_after is None else list(split.search_after)
    return [split.split_id, split.slice_id, split.slice_max, split.pit_id, after]


def _split_from_json(_version: int, data: Any) -> SliceSplit:
    split_id, slice_id, slice_max, pit_id, after = data
    return SliceSplit(
        split_id, slice_id, slice_max, pit_id, None if after is None else tuple(after)
    )


SPLIT_SERIALIZER: VersionedSerializer[SliceSplit] = JsonSerializer(
    version=1, to_json=_split_to_json, from_json=_split_from_json
)
ENUMERATOR_SERIALIZER: VersionedSerializer[list[SliceSplit] | None] = JsonSerializer(
    version=1,
    to_json=lambda splits: None if splits is None else [_split_to_json(s) for s in splits],
    from_json=lambda v, data: None if data is None else [_split_from_json(v, d) for d in data],
)


def _keep_alive(options: OpenSearchSourceOptions) -> str:
    return f"{max(1, int(options.keep_alive.total_seconds()))}s"


class _SliceEnumerator(SplitEnumerator[SliceSplit, list[SliceSplit] | None]):
    """Opens the point in time, cuts the slices once and hands them out on request."""

    def __init__(
        self,
        options: OpenSearchSourceOptions,
        context: SplitEnumeratorContext[SliceSplit],
        unassigned: list[SliceSplit] | None,
    ) -> None:
        self._options = options
        self._context = context
        self._unassigned = None if unassigned is None else deque(unassigned)
        self._waiting: list[int] = []

    async def start(self) -> None:
        """Open the point in time and cut the slices (a fresh job only)."""
        if self._unassigned is not None:
            return
        options = self._options
        client = create_client(options.client)
        try:
            pit_id = await open_point_in_time(
                client, options.client.flavor, options.index, _keep_alive(options)
            )
        except Exception as exc:
            what = f"opening a point in time on {options.index!r}"
            raise translate(exc, what, Masker(options.client)) from None
        finally:
            await client.close()
        count = options.slices or self._context.parallelism
        self._unassigned = deque(
            SliceSplit(f"slice-{i}-of-{count}", i, count, pit_id) for i in range(count)
        )
        waiting, self._waiting = self._waiting, []
        for subtask in waiting:
            self.handle_split_request(subtask)

    def handle_split_request(self, subtask_index: int) -> None:
        """Assign the reader its share of the slices left, or tell it there are no more."""
        if self._unassigned is None:
            self._waiting.append(subtask_index)
        elif self._unassigned:
            share = math.ceil(len(self._unassigned) / self._context.parallelism)
            slices = [self._unassigned.popleft() for _ in range(share)]
            self._context.assign_splits({subtask_index: slices})
        else:
            self._context.signal_no_more_splits(subtask_index)

    def add_reader(self, subtask_index: int) -> None:
        """Readers ask for slices themselves."""

    def add_splits_back(self, splits: Sequence[SliceSplit], subtask_index: int) -> None:
        """Slices of a failed reader go to the front of the queue."""
        if self._unassigned is None:
            self._unassigned = deque()
        self._unassigned.extendleft(reversed(splits))

    def snapshot_state(self, checkpoint_id: int) -> list[SliceSplit] | None:
        """The unassigned slices."""
        return None if self._unassigned is None else list(self._unassigned)


@dataclass(slots=True)
class _SliceState:
    """The position of one slice: the sort values of the last hit emitted, the current PIT."""

    split: SliceSplit
    search_after: tuple[Any, ...] | None
    pit_id: str


class _SliceReader(SplitReader[Hit, SliceSplit]):
    """Reads its slices in turn, a page per ``fetch``, with ``AsyncOpenSearch``."""

    def __init__(self, options: OpenSearchSourceOptions) -> None:
        self._options = options
        self._mask = Masker(options.client)
        self._client: AsyncOpenSearch | None = None
        self._serializer = CountingSerializer()
        self._slices: deque[_SliceState] = deque()

    @override
    def handle_splits_changes(self, added: Sequence[SliceSplit]) -> None:
        self._slices.extend(_SliceState(s, s.search_after, s.pit_id) for s in added)

    async def aclose(self) -> None:
        """Close the client."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _body(self, state: _SliceState) -> dict[str, Any]:
        options = self._options
        body: dict[str, Any] = {
            "size": options.fetch_size,
            "pit": {"id": state.pit_id, "keep_alive": _keep_alive(options)},
            "sort": list(options.sort),
            "query": options.query or {"match_all": {}},
            "track_total_hits": False,
        }
        if state.split.slice_max > 1:
            body["slice"] = {"id": state.split.slice_id, "max": state.split.slice_max}
        if state.search_after is not None:
            body["search_after"] = list(state.search_after)
        return body

    async def _search(self, state: _SliceState) -> dict[str, Any]:
        if self._client is None:
            self._client = create_client(self._options.client, self._serializer)
        what = f"reading {state.split.split_id} of {self._options.index!r}"
        try:
            answer: dict[str, Any] = await self._client.search(body=self._body(state))
            return answer
        except Exception as exc:
            if status_of(exc) != 404:
                raise translate(exc, what, self._mask) from None
            # The point in time expired (a restore after more than keep_alive).
            await self._reopen(state, what)
        try:
            answer = await self._client.search(body=self._body(state))
            return answer
        except Exception as exc:
            raise translate(exc, what, self._mask) from None

    async def _reopen(self, state: _SliceState, what: str) -> None:
        options = self._options
        if state.search_after is not None and "_shard_doc" in map(str, options.sort):
            raise FatalError(
                f"opensearch source: {what}: the point in time expired (option 'keep_alive' is "
                f"{options.keep_alive}) and positions sorted by _shard_doc hold only within it; "
                "set option 'sort' to fields unique together to resume in a new point in time"
            )
        assert self._client is not None
        try:
            state.pit_id = await open_point_in_time(
                self._client, options.client.flavor, options.index, _keep_alive(options)
            )
        except Exception as exc:
            raise translate(exc, f"{what}: reopening the point in time", self._mask) from None

    @override
    async def fetch(self) -> RecordsBySplit[Hit]:
        if not self._slices:
            return RecordsBySplit()
        state = self._slices[0]
        answer = await self._search(state)
        state.pit_id = str(answer.get("pit_id") or state.pit_id)
        hits: list[Hit] = answer["hits"]["hits"]
        split_id = state.split.split_id
        if hits:
            state.search_after = tuple(hits[-1]["sort"])
        size = self._serializer.take()
        if len(hits) < self._options.fetch_size:
            self._slices.popleft()
            return RecordsBySplit({split_id: hits}, finished_splits=(split_id,), size_in_bytes=size)
        self._slices.rotate(-1)
        return RecordsBySplit({split_id: hits}, size_in_bytes=size)


class _HitEmitter(RecordEmitter[Hit, T, _SliceState], Generic[T]):
    """Emits the ``_source`` of hits (or their metadata dicts) and advances ``search_after``."""

    def __init__(self, with_metadata: bool, deserializer: Callable[[Any], T] | None) -> None:
        self._with_metadata = with_metadata
        self._deserializer = deserializer

    def _value(self, hit: Hit) -> Any:
        if self._with_metadata:
            return {"_index": hit["_index"], "_id": hit["_id"], "_source": hit.get("_source")}
        return hit.get("_source")

    @override
    def emit_record(self, element: Hit, output: ReaderOutput[T], split_state: _SliceState) -> None:
        self.emit_batch([element], output, split_state)

    @override
    def emit_batch(
        self, elements: Sequence[Hit], output: ReaderOutput[T], split_state: _SliceState
    ) -> None:
        values = [self._value(hit) for hit in elements]
        if self._deserializer is not None:
            values = list(map(self._deserializer, values))
        output.collect_batch(values)
        split_state.search_after = tuple(elements[-1]["sort"])


class _OpenSearchReader(SourceReaderBase[Hit, T, SliceSplit, _SliceState]):
    """The reader of one subtask: one fetcher reading its slices in turn."""

    def __init__(
        self,
        context: SourceReaderContext,
        options: OpenSearchSourceOptions,
        emitter: _HitEmitter[T],
    ) -> None:
        self._split_readers: list[_SliceReader] = []

        def factory() -> _SliceReader:
            reader = _SliceReader(options)
            self._split_readers.append(reader)
            return reader

        super().__init__(context, SplitFetcherManager(factory), emitter)

    @override
    def initialized_state(self, split: SliceSplit) -> _SliceState:
        return _SliceState(split, split.search_after, split.pit_id)

    @override
    def to_split(self, split_id: str, state: _SliceState) -> SliceSplit:
        return replace(state.split, search_after=state.search_after, pit_id=state.pit_id)

    @override
    async def close(self) -> None:
        await super().close()
        for reader in self._split_readers:
            await reader.aclose()


class OpenSearchSource(Source[T, SliceSplit, list[SliceSplit] | None], Generic[T]):
    """Reads the documents of an index (bounded) in parallel slices of a point-in-time search.

    Args:
        options: the client, the index, the query, the slices and the page size.
        deserializer: turns each ``_source`` (or metadata dict, with ``with_metadata``) into a
            record; default: the dicts as they are.
    """

    def __init__(
        self,
        options: OpenSearchSourceOptions,
        *,
        deserializer: Callable[[Any], T] | None = None,
    ) -> None:
        if not isinstance(options, OpenSearchSourceOptions):
            raise ConfigurationError(
                f"opensearch source: expected OpenSearchSourceOptions, got {type(options).__name__}"
            )
        self.options = options
        self._deserializer = deserializer

    def __repr__(self) -> str:
        return f"OpenSearchSource(index={self.options.index!r})"

    @property
    @override
    def boundedness(self) -> Boundedness:
        return Boundedness.BOUNDED

    @override
    def create_enumerator(
        self, context: SplitEnumeratorContext[SliceSplit]
    ) -> SplitEnumerator[SliceSplit, list[SliceSplit] | None]:
        return _SliceEnumerator(self.options, context, None)

    @override
    def restore_enumerator(
        self, context: SplitEnumeratorContext[SliceSplit], state: list[SliceSplit] | None
    ) -> SplitEnumerator[SliceSplit, list[SliceSplit] | None]:
        return _SliceEnumerator(self.options, context, state)

    @override
    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, SliceSplit]:
        emitter: _HitEmitter[T] = _HitEmitter(self.options.with_metadata, self._deserializer)
        return _OpenSearchReader(context, self.options, emitter)

    @override
    def split_serializer(self) -> VersionedSerializer[SliceSplit]:
        return SPLIT_SERIALIZER

    @override
    def enumerator_state_serializer(self) -> VersionedSerializer[list[SliceSplit] | None]:
        return ENUMERATOR_SERIALIZER
