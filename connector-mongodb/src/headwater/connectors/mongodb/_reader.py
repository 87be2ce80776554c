"""The source reader of the MongoDB source, on connector-base's reader base.

- :class:`MongoSplitReader` (a ``SplitReader``, one per split: ``FetcherMode.PER_SPLIT``): a
  snapshot split is one ``find`` sorted by ``_id`` over its range (``_id > last_id`` after a
  restore; at ``snapshot_time`` with read concern ``snapshot`` for ``startup_mode='initial'``);
  the stream split is one change stream (``resume_after`` its token, else
  ``start_at_operation_time``). Snapshot documents are fetched as ``RawBSONDocument`` (the
  fetcher decodes nothing; the format decodes a batch in one call); change events as ``dict``
  (pymongo decodes each in one C call, cheaper than lazily inflated raw events).
- :class:`MongoRecordEmitter`: turns a batch into records (format, change events or changelog
  records) and advances the split's position past it, together.
- :class:`MongoSourceReader`: split states, the reports to the enumerator, the client.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from headwater.connectors.base import (
    Deserializer,
    FetcherMode,
    RecordEmitter,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
    SplitReader,
)
from headwater.connectors.mongodb._client import connect, translate
from headwater.connectors.mongodb._enumerator import SplitsFinished, SplitsHeld
from headwater.connectors.mongodb._options import MongoSourceOptions
from headwater.connectors.mongodb._records import (
    CODEC_OPTIONS,
    BsonFormat,
    MongoChangeEvent,
    cluster_time_millis,
)
from headwater.connectors.mongodb._split import MongoSplit
from headwater.core import FatalError, ReaderOutput, SourceReaderContext
from pymongo import AsyncMongoClient
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import OperationFailure, PyMongoError
from typing_extensions import override

__all__ = ["MongoRecordEmitter", "MongoSourceReader", "MongoSplitReader", "MongoSplitState"]

T = TypeVar("T")
"""The type of the records the source emits."""

RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument, tz_aware=True)

Element = Mapping[str, Any]
"""What a split reader fetches: a ``RawBSONDocument`` (snapshot) or a change event (``dict``)."""

_HISTORY_LOST = frozenset(
    {286, 280, 136}
)  # ChangeStreamHistoryLost, ChangeStreamFatalError, CappedPositionLost


@dataclasses.dataclass(slots=True)
class MongoSplitState:
    """The mutable position of one split (see :class:`MongoSplit`)."""

    split: MongoSplit
    last_id: Any
    has_last: bool
    resume_token: dict[str, Any] | None

    def snapshot(self) -> MongoSplit:
        """The split at its current position (for checkpoints)."""
        return dataclasses.replace(
            self.split, last_id=self.last_id, has_last=self.has_last, resume_token=self.resume_token
        )


class MongoSplitReader(SplitReader[Element, MongoSplit]):
    """Reads one split (snapshot range or change stream) with the reader's shared client."""

    def __init__(
        self, client: Callable[[], AsyncMongoClient[Any]], options: MongoSourceOptions
    ) -> None:
        self._client = client
        self._options = options
        self._split: MongoSplit | None = None
        self._cursor: AsyncCursor[RawBSONDocument] | AsyncCommandCursor[RawBSONDocument] | None = (
            None
        )
        self._stream: AsyncChangeStream[dict[str, Any]] | None = None

    @override
    def handle_splits_changes(self, added: Sequence[MongoSplit]) -> None:
        assert self._split is None and len(added) == 1, "one split per split reader"
        self._split = added[0]

    @override
    async def fetch(self) -> RecordsBySplit[Element]:
        split = self._split
        assert split is not None
        try:
            if split.stream:
                return await self._fetch_stream(split)
            return await self._fetch_snapshot(split)
        except OperationFailure as exc:
            if split.stream and exc.code in _HISTORY_LOST:
                raise FatalError(
                    f"mongodb source: the change stream of {self._options.where} cannot resume "
                    f"from the checkpointed position (code {exc.code}: the oplog no longer holds "
                    "it); start the job anew with startup_mode='initial', 'latest' or "
                    "'timestamp' (nothing restarts silently)"
                ) from exc
            raise translate(exc, f"reading split {split.split_id}", self._options) from exc
        except PyMongoError as exc:
            raise translate(exc, f"reading split {split.split_id}", self._options) from exc

    async def _open_snapshot(
        self, split: MongoSplit
    ) -> AsyncCursor[RawBSONDocument] | AsyncCommandCursor[RawBSONDocument]:
        """A cursor over the split's range in ``_id`` order.

        The range is given as index bounds (``min``/``max`` on the ``_id`` index), which follow
        BSON's order across types; a ``$gte``/``$lt`` filter would only match ``_id`` values of
        the bounds' own type. After a restore the range starts at ``last_id`` (inclusive: the
        fetch drops that document).
        """
        options = self._options
        assert options.database is not None and options.collection is not None
        database = self._client().get_database(options.database, codec_options=RAW)
        lower = split.last_id if split.has_last else split.lower
        command: dict[str, Any] = {
            "find": options.collection,
            "filter": options.filter or {},
            "sort": {"_id": 1},
            "hint": {"_id": 1},
            "min": {"_id": lower},
            "max": {"_id": split.upper},
            "batchSize": options.fetch_size,
        }
        if options.projection:
            command["projection"] = options.projection
        if split.snapshot_time is not None:
            command["readConcern"] = {"level": "snapshot", "atClusterTime": split.snapshot_time}
        return await database.cursor_command(command, codec_options=RAW)

    async def _fetch_snapshot(self, split: MongoSplit) -> RecordsBySplit[Element]:
        if self._cursor is None:
            self._cursor = await self._open_snapshot(split)
            self._skip = split.has_last
        cursor = self._cursor
        documents = await cursor.to_list(self._options.fetch_size)
        if self._skip and documents:
            self._skip = False
            if documents[0]["_id"] == split.last_id:
                documents = documents[1:]
        finished = [split.split_id] if not cursor.alive else []
        return RecordsBySplit(
            records={split.split_id: documents} if documents else {},
            finished_splits=finished,
            size_in_bytes=sum(len(d.raw) for d in documents),
        )

    async def _open_stream(self, split: MongoSplit) -> AsyncChangeStream[dict[str, Any]]:
        options = self._options
        client = self._client()
        kwargs: dict[str, Any] = {
            "batch_size": options.fetch_size,
            "max_await_time_ms": int(options.max_await_time.total_seconds() * 1000),
        }
        if options.full_document != "default":
            kwargs["full_document"] = {
                "update_lookup": "updateLookup",
                "when_available": "whenAvailable",
                "required": "required",
            }[options.full_document]
        if options.full_document_before_change != "off":
            kwargs["full_document_before_change"] = {
                "when_available": "whenAvailable",
                "required": "required",
            }[options.full_document_before_change]
        if split.resume_token is not None:
            kwargs["resume_after"] = split.resume_token
        else:
            kwargs["start_at_operation_time"] = split.start_at
        pipeline = options.change_stream_pipeline or []
        if options.database is None:
            return await client.watch(pipeline, **kwargs)
        database = client.get_database(options.database)
        if options.collection is None:
            return await database.watch(pipeline, **kwargs)
        return await database[options.collection].watch(pipeline, **kwargs)

    async def _fetch_stream(self, split: MongoSplit) -> RecordsBySplit[Element]:
        if self._stream is None:
            self._stream = await self._open_stream(split)
        stream = self._stream
        events: list[Element] = []
        deadline = time.monotonic() + self._options.max_await_time.total_seconds()
        limit = self._options.fetch_size
        while len(events) < limit:
            event = await stream.try_next()
            if event is None:
                break
            if event["operationType"] == "invalidate":
                raise FatalError(
                    f"mongodb source: the change stream of {self._options.where} was invalidated "
                    "(the collection was dropped or renamed); start the job anew with "
                    "startup_mode='initial', 'latest' or 'timestamp'"
                )
            events.append(event)
            if time.monotonic() >= deadline:
                break
        return RecordsBySplit(
            records={split.split_id: events} if events else {},
            max_event_time=cluster_time_millis(events[-1]["clusterTime"]) if events else None,
        )

    async def aclose(self) -> None:
        """Close the cursor or change stream."""
        cursor, self._cursor = self._cursor, None
        stream, self._stream = self._stream, None
        if cursor is not None:
            await cursor.close()
        if stream is not None:
            await stream.close()


def _decode(document: Element) -> dict[str, Any]:
    """A raw document as ``dict`` (timezone-aware datetimes)."""
    return bson.decode(cast("bytes", cast("RawBSONDocument", document).raw), CODEC_OPTIONS)


def _millis(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


class MongoRecordEmitter(RecordEmitter[Element, T, MongoSplitState], Generic[T]):
    """Turns a batch of one split into records and advances the split's position past it.

    ``output='document'``: snapshot documents and the full documents of inserts, updates and
    replaces go through the format (its error policy handles bad ones); deletes and events
    without a document are skipped. ``change_event``: :class:`MongoChangeEvent` (snapshot
    documents with operation ``snapshot``). ``changelog``: :class:`MongoChangelogRecord`.
    Timestamps: ``event_time_field`` of the document if set, else the cluster time of an
    event (the snapshot's for ``initial`` snapshot documents), else none.
    """

    def __init__(self, options: MongoSourceOptions, deserializer: Deserializer[Any]) -> None:
        self._output = options.output
        self._field = options.event_time_field
        self._deserializer = deserializer
        self._plain_bson = type(deserializer.format) is BsonFormat
        self._namespace = (options.database or "", options.collection or "")

    @override
    def emit_record(
        self, element: Element, output: ReaderOutput[T], split_state: MongoSplitState
    ) -> None:
        self.emit_batch([element], output, split_state)

    @override
    def emit_batch(
        self,
        elements: Sequence[Element],
        output: ReaderOutput[T],
        split_state: MongoSplitState,
    ) -> None:
        split = split_state.split
        if split.stream:
            self._emit_events(elements, output, split)
            split_state.resume_token = dict(elements[-1]["_id"])
        else:
            self._emit_documents(elements, output, split)
            split_state.last_id = elements[-1]["_id"]
            split_state.has_last = True

    def _time(self, document: Mapping[str, Any] | None, cluster: Timestamp | None) -> int | None:
        if self._field is not None:
            return _millis(document.get(self._field)) if document is not None else None
        return cluster_time_millis(cluster) if cluster is not None else None

    def _emit_documents(
        self, elements: Sequence[Element], output: ReaderOutput[T], split: MongoSplit
    ) -> None:
        cluster = split.snapshot_time
        if self._output == "document":
            timestamps = (
                [self._time(d, cluster) for d in elements]
                if self._field is not None
                else [cluster_time_millis(cluster) if cluster else None] * len(elements)
            )
            values, kept = self._deserializer.deserialize_timestamped(
                [cast("bytes", cast("RawBSONDocument", d).raw) for d in elements],
                timestamps,
                position=lambda i: f"{split.split_id} _id={elements[i]['_id']!r}",
            )
            output.collect_batch(cast("list[T]", values), kept)
            return
        events = [
            MongoChangeEvent(
                operation="snapshot",
                key={"_id": document["_id"]},
                full_document=document,
                full_document_before_change=None,
                update_description=None,
                cluster_time=cluster,
                namespace=self._namespace,
            )
            for document in map(_decode, elements)
        ]
        self._collect_events(events, output)

    def _emit_events(
        self, elements: Sequence[Element], output: ReaderOutput[T], split: MongoSplit
    ) -> None:
        if self._output == "document":
            with_document = [e for e in elements if e.get("fullDocument") is not None]
            timestamps: list[int | None] = (
                [self._time(e["fullDocument"], e["clusterTime"]) for e in with_document]
                if self._field is not None
                else [cluster_time_millis(e["clusterTime"]) for e in with_document]
            )
            if self._plain_bson:  # the events are decoded already: their documents are the records
                output.collect_batch(
                    cast("list[T]", [e["fullDocument"] for e in with_document]), timestamps
                )
                return
            values, kept = self._deserializer.deserialize_timestamped(
                [bson.encode(e["fullDocument"]) for e in with_document],
                timestamps,
                position=lambda i: f"{split.split_id} at {with_document[i]['clusterTime']}",
            )
            output.collect_batch(cast("list[T]", values), kept)
            return
        events = [MongoChangeEvent.from_server(e) for e in elements]
        self._collect_events(events, output)

    def _collect_events(self, events: list[MongoChangeEvent], output: ReaderOutput[T]) -> None:
        timestamps = [self._time(e.full_document, e.cluster_time) for e in events]
        if self._output == "change_event":
            output.collect_batch(cast("list[T]", events), timestamps)
            return
        records: list[Any] = []
        kept: list[int | None] = []
        for event, timestamp in zip(events, timestamps, strict=True):
            record = event.to_changelog()
            if record is not None:
                records.append(record)
                kept.append(timestamp)
        output.collect_batch(cast("list[T]", records), kept)


class MongoSourceReader(SourceReaderBase[Element, T, MongoSplit, MongoSplitState]):
    """Reads the splits of one subtask: one fetcher task per split, one client for all."""

    def __init__(
        self,
        context: SourceReaderContext,
        options: MongoSourceOptions,
        emitter: MongoRecordEmitter[T],
    ) -> None:
        self._options = options
        self._client: AsyncMongoClient[Any] | None = None
        self._split_readers: list[MongoSplitReader] = []
        super().__init__(
            context,
            SplitFetcherManager(self._new_split_reader, mode=FetcherMode.PER_SPLIT),
            emitter,
        )

    def _shared_client(self) -> AsyncMongoClient[Any]:
        if self._client is None:
            self._client = connect(self._options)
        return self._client

    def _new_split_reader(self) -> MongoSplitReader:
        reader = MongoSplitReader(self._shared_client, self._options)
        self._split_readers.append(reader)
        return reader

    @override
    async def start(self) -> None:
        held = frozenset(s for s, state in self._states.items() if not state.split.stream)
        self.context.send_source_event(SplitsHeld(held))
        await super().start()

    @override
    def initialized_state(self, split: MongoSplit) -> MongoSplitState:
        return MongoSplitState(split, split.last_id, split.has_last, split.resume_token)

    @override
    def to_split(self, split_id: str, state: MongoSplitState) -> MongoSplit:
        return state.snapshot()

    @override
    def on_split_finished(self, finished: Mapping[str, MongoSplitState]) -> None:
        self.context.send_source_event(SplitsFinished(frozenset(finished)))

    @override
    async def close(self) -> None:
        try:
            await super().close()
        finally:
            for reader in self._split_readers:
                await reader.aclose()
            if self._client is not None:
                await self._client.close()
                self._client = None
