"""The reader base: split readers fetch, a fetcher manager runs them, an emitter decodes, the base owns state.

A connector writes three small parts:

- a :class:`SplitReader` (async client) or :class:`BlockingSplitReader` (blocking client, run on a
  thread): ``fetch()`` one batch from the external system, ``handle_splits_changes()``,
  ``wake_up()``;
- a :class:`RecordEmitter`: turn fetched elements into records and advance the split state;
- a subclass of :class:`SourceReaderBase` with the hooks ``initialized_state``, ``to_split`` and
  (optionally) ``on_split_finished``.

:class:`SourceReaderBase` owns the element queue between fetchers and the event loop, the state of
every split, each split's output (so watermarks are per split), finished-split cleanup, pausing for
watermark alignment, availability, and the FLIP-33 metrics ``numRecordsIn``, ``numBytesIn``,
``numRecordsInErrors`` and ``currentFetchEventTimeLag``.

Per-split watermarks: the emitter always gets the output of the split whose elements it emits
(``output.split_output(split_id)``, Flink's per-split ``SourceOutput``), never the reader-wide
output. A split's output is created when the split is added (at the reader's next ``poll_next``,
before anything else is emitted) and released when the split finishes, so the reader's watermark
is the minimum over its unfinished splits, idleness is per split, and watermark alignment can
pause single splits. A connector on this base cannot forget it.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from headwater.core import InputStatus, ReaderOutput, SourceReader, SourceReaderContext, SourceSplit

__all__ = [
    "BlockingSplitReader",
    "FetcherMode",
    "RecordEmitter",
    "RecordsBySplit",
    "SourceReaderBase",
    "SplitFetcherManager",
    "SplitReader",
]

E = TypeVar("E")
"""The element type a split reader fetches (a client library's message)."""
T = TypeVar("T")
"""The record type the source emits."""
SplitT = TypeVar("SplitT", bound=SourceSplit)
"""The immutable split type."""
StateT = TypeVar("StateT")
"""The mutable per-split state (the position of the next element to emit)."""


@dataclass(frozen=True, slots=True)
class RecordsBySplit(Generic[E]):
    """One fetch: elements per split id, the splits that reached their end, and fetch facts.

    Attributes:
        records: elements per split id, in order.
        finished_splits: ids of splits that have no more elements (their records, if any, come first).
        size_in_bytes: the bytes fetched, for ``numBytesIn`` (``None`` if unknown).
        max_event_time: the newest event time (ms) fetched, for ``currentFetchEventTimeLag``.
    """

    records: Mapping[str, Sequence[E]] = field(default_factory=dict)
    finished_splits: Collection[str] = ()
    size_in_bytes: int | None = None
    max_event_time: int | None = None
    fetched_at: float = field(default_factory=time.time)
    """Wall-clock time of the fetch, in seconds."""


class _SplitReaderHooks(ABC, Generic[SplitT]):
    @abstractmethod
    def handle_splits_changes(self, added: Sequence[SplitT]) -> None:
        """Start reading ``added`` (from their positions). Must not block."""

    def pause_or_resume_splits(self, to_pause: Collection[str], to_resume: Collection[str]) -> None:
        """Stop or restart fetching some splits (watermark alignment). Must not block.

        The fetcher never calls ``fetch`` while every split it owns is paused; a reader that
        multiplexes splits overrides this to leave paused splits out of its fetches.
        """

    def wake_up(self) -> None:
        """Make a ``fetch`` in progress return soon (possibly empty). Called from the event loop."""

    def close(self) -> None:
        """Release the client (called after the last fetch has returned)."""


class SplitReader(_SplitReaderHooks[SplitT], Generic[E, SplitT]):
    """Reads splits with an asyncio client; its fetcher is an asyncio task on the job's loop.

    The fetcher awaits :meth:`aclose` after the last fetch (an async client closes there; the
    default calls :meth:`close`).
    """

    async def aclose(self) -> None:
        """Release the async client (called after the last fetch has returned); must be idempotent."""
        self.close()

    @abstractmethod
    async def fetch(self) -> RecordsBySplit[E]:
        """One batch from the external system; may wait, should return within about a second.

        After ``wake_up`` it must return soon and resume where it stopped at the next call.
        """


class BlockingSplitReader(_SplitReaderHooks[SplitT], Generic[E, SplitT]):
    """Reads splits with a blocking client; its fetcher runs on a dedicated thread.

    ``wake_up`` is called from the event loop thread while ``fetch`` runs on the fetcher thread;
    it must be thread-safe.
    """

    @abstractmethod
    def fetch(self) -> RecordsBySplit[E]:
        """One batch from the external system; may block, must return soon after ``wake_up``."""


AnySplitReader = SplitReader[E, SplitT] | BlockingSplitReader[E, SplitT]


class RecordEmitter(ABC, Generic[E, T, StateT]):
    """Turns fetched elements into records and advances the split state, together."""

    @abstractmethod
    def emit_record(self, element: E, output: ReaderOutput[T], split_state: StateT) -> None:
        """Emit one element (zero or more records) and advance ``split_state`` past it."""

    def emit_batch(
        self, elements: Sequence[E], output: ReaderOutput[T], split_state: StateT
    ) -> None:
        """Emit consecutive elements of one split; override to decode a whole batch at once."""
        emit = self.emit_record
        for element in elements:
            emit(element, output, split_state)


class _ErrorSlot:
    """The first fetcher error; later ones become notes on it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def record(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
            elif error is not self.error:
                self.error.add_note(f"also: {type(error).__name__}: {error}")

    def raise_if_any(self) -> None:
        if self.error is not None:
            raise self.error


class _ElementQueue(Generic[E]):
    """Fetches handed from fetchers (tasks or threads) to the reader on the event loop, bounded."""

    def __init__(self, capacity: int, loop: asyncio.AbstractEventLoop) -> None:
        self._items: deque[tuple[int, RecordsBySplit[E]]] = deque()
        self._capacity = capacity
        self._loop = loop
        self._space = threading.Condition()
        self._available: asyncio.Future[None] = loop.create_future()
        self._space_waiters: list[asyncio.Future[None]] = []
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def available(self) -> asyncio.Future[None]:
        if self._items and not self._available.done():
            self._available.set_result(None)
        elif self._available.done() and not self._items:
            self._available = self._loop.create_future()
        return self._available

    def wake(self) -> None:
        """Complete the availability future (on the loop)."""
        if not self._available.done():
            self._available.set_result(None)

    def wake_threadsafe(self) -> None:
        self._loop.call_soon_threadsafe(self.wake)

    async def put(self, fetcher: int, item: RecordsBySplit[E]) -> None:
        while len(self._items) >= self._capacity and not self.closed:
            waiter = self._loop.create_future()
            self._space_waiters.append(waiter)
            await waiter
        self._items.append((fetcher, item))
        self.wake()

    def put_blocking(self, fetcher: int, item: RecordsBySplit[E]) -> None:
        with self._space:
            while len(self._items) >= self._capacity and not self.closed:
                self._space.wait(0.1)
            self._items.append((fetcher, item))
        self.wake_threadsafe()

    def poll(self) -> tuple[int, RecordsBySplit[E]] | None:
        if not self._items:
            return None
        with self._space:
            item = self._items.popleft()
            self._space.notify_all()
        waiters, self._space_waiters = self._space_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return item

    def close(self) -> None:
        with self._space:
            self.closed = True
            self._space.notify_all()
        for waiter in self._space_waiters:
            if not waiter.done():
                waiter.set_result(None)


class _SplitFetcher(Generic[E, SplitT]):
    """Runs one split reader: applies split changes between fetches, fetches, queues the results."""

    def __init__(
        self,
        fetcher_id: int,
        reader: AnySplitReader[E, SplitT],
        queue: _ElementQueue[E],
        errors: _ErrorSlot,
        shutdown_when_idle: bool,
    ) -> None:
        self.id = fetcher_id
        self.reader = reader
        self._queue = queue
        self._errors = errors
        self._shutdown_when_idle = shutdown_when_idle
        self._lock = threading.Lock()
        self._changes: list[Callable[[], None]] = []
        self.assigned: set[str] = set()
        self._paused: set[str] = set()
        self._wake_async: asyncio.Event | None = None
        self._wake_thread = threading.Event()
        self._closed = False
        self.done = False

    # Called on the event loop.
    def add_splits(self, splits: Sequence[SplitT]) -> None:
        with self._lock:
            self.assigned.update(s.split_id for s in splits)
            self._changes.append(lambda: self.reader.handle_splits_changes(splits))
        self._nudge()

    def pause_or_resume(self, to_pause: Collection[str], to_resume: Collection[str]) -> None:
        with self._lock:
            pause = set(to_pause) & self.assigned
            resume = set(to_resume) & self.assigned
            if not pause and not resume:
                return
            self._paused = (self._paused | pause) - resume
            self._changes.append(lambda: self.reader.pause_or_resume_splits(pause, resume))
        self._nudge()

    def close(self) -> None:
        self._closed = True
        self._nudge()

    def _nudge(self) -> None:
        self.reader.wake_up()
        self._wake_thread.set()
        if self._wake_async is not None:
            self._wake_async.set()

    # Called on the fetcher (task or thread).
    def _prepare(self) -> bool:
        """Apply pending changes; whether there is a split to fetch from."""
        with self._lock:
            changes, self._changes = self._changes, []
            for change in changes:
                change()
            return bool(self.assigned - self._paused)

    def _finished(self, fetched: RecordsBySplit[E]) -> None:
        if fetched.finished_splits:
            with self._lock:
                self.assigned.difference_update(fetched.finished_splits)
                self._paused.difference_update(fetched.finished_splits)
                if self._shutdown_when_idle and not self.assigned and not self._changes:
                    self.done = True

    async def run_async(self) -> None:
        reader = self.reader
        assert isinstance(reader, SplitReader)
        self._wake_async = asyncio.Event()
        try:
            while not self._closed and not self.done:
                if not self._prepare():
                    self._wake_async.clear()
                    if not self._changes and not self._closed:
                        await self._wake_async.wait()
                    continue
                fetched = await reader.fetch()
                self._finished(fetched)
                if fetched.records or fetched.finished_splits:
                    await self._queue.put(self.id, fetched)
        except Exception as exc:
            self._errors.record(exc)
            self._queue.wake()
        finally:
            await reader.aclose()

    def run_thread(self) -> None:
        reader = self.reader
        assert isinstance(reader, BlockingSplitReader)
        try:
            while not self._closed and not self.done:
                if not self._prepare():
                    self._wake_thread.wait(0.1)
                    self._wake_thread.clear()
                    continue
                fetched = reader.fetch()
                self._finished(fetched)
                if fetched.records or fetched.finished_splits:
                    self._queue.put_blocking(self.id, fetched)
        except Exception as exc:
            self._errors.record(exc)
            self._queue.wake_threadsafe()
        finally:
            reader.close()


class FetcherMode(enum.Enum):
    """How splits are spread over fetchers."""

    SINGLE = "single"
    """One fetcher (one split reader) reads every split of the subtask (multiplexing)."""
    PER_SPLIT = "per_split"
    """One fetcher per split; it ends when its split is finished."""


class SplitFetcherManager(Generic[E, SplitT]):
    """Creates fetchers and hands them splits; the threading model is a policy.

    Fetchers run :class:`SplitReader` instances as asyncio tasks and :class:`BlockingSplitReader`
    instances on dedicated daemon threads. An error raised by a fetcher is kept (the first one;
    later ones are added to it with ``add_note``) and re-raised on the event loop at the reader's
    next ``poll_next``.

    Args:
        split_reader_factory: builds a split reader (called once per fetcher).
        mode: one fetcher for every split, or one per split.
        queue_capacity: fetches buffered between fetchers and the reader (backpressure).
    """

    def __init__(
        self,
        split_reader_factory: Callable[[], AnySplitReader[E, SplitT]],
        *,
        mode: FetcherMode = FetcherMode.SINGLE,
        queue_capacity: int = 2,
    ) -> None:
        self._factory = split_reader_factory
        self._mode = mode
        self._capacity = queue_capacity
        self._fetchers: dict[int, _SplitFetcher[E, SplitT]] = {}
        self._owner: dict[str, _SplitFetcher[E, SplitT]] = {}
        self._runners: list[asyncio.Task[None] | threading.Thread] = []
        self._next_id = 0
        self.errors = _ErrorSlot()
        self._queue: _ElementQueue[E] | None = None

    @property
    def queue(self) -> _ElementQueue[E]:
        """The element queue (created on the event loop at first use)."""
        if self._queue is None:
            self._queue = _ElementQueue(self._capacity, asyncio.get_running_loop())
        return self._queue

    def add_splits(self, splits: Sequence[SplitT]) -> None:
        """Hand splits to a fetcher (the single one, or a new one per split)."""
        if not splits:
            return
        if self._mode is FetcherMode.PER_SPLIT:
            for split in splits:
                own = self._start_fetcher(shutdown_when_idle=True)
                own.add_splits([split])
                self._owner[split.split_id] = own
            return
        fetcher: _SplitFetcher[E, SplitT] | None = next(
            (f for f in self._fetchers.values() if not f.done), None
        )
        if fetcher is None:
            fetcher = self._start_fetcher(shutdown_when_idle=False)
        fetcher.add_splits(splits)
        for split in splits:
            self._owner[split.split_id] = fetcher

    def _start_fetcher(self, *, shutdown_when_idle: bool) -> _SplitFetcher[E, SplitT]:
        fetcher = _SplitFetcher(
            self._next_id, self._factory(), self.queue, self.errors, shutdown_when_idle
        )
        self._fetchers[self._next_id] = fetcher
        self._next_id += 1
        if isinstance(fetcher.reader, SplitReader):
            self._runners.append(asyncio.get_running_loop().create_task(fetcher.run_async()))
        else:
            thread = threading.Thread(
                target=fetcher.run_thread, name=f"headwater-fetcher-{fetcher.id}", daemon=True
            )
            thread.start()
            self._runners.append(thread)
        return fetcher

    def splits_finished(self, split_ids: Collection[str]) -> None:
        """Forget finished splits."""
        for split_id in split_ids:
            self._owner.pop(split_id, None)

    def pause_or_resume_splits(self, to_pause: Collection[str], to_resume: Collection[str]) -> None:
        """Forward to the fetchers owning the splits."""
        for fetcher in {id(f): f for f in self._owner.values()}.values():
            fetcher.pause_or_resume(to_pause, to_resume)

    def check_errors(self) -> None:
        """Re-raise the first fetcher error, if any."""
        self.errors.raise_if_any()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop every fetcher and wait for it (threads up to ``timeout`` seconds)."""
        if self._queue is not None:
            self._queue.close()
        for fetcher in self._fetchers.values():
            fetcher.close()
        tasks = [r for r in self._runners if isinstance(r, asyncio.Task)]
        threads = [r for r in self._runners if isinstance(r, threading.Thread)]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
            for task in tasks:
                task.cancel()
        deadline = time.monotonic() + timeout
        for thread in threads:
            await asyncio.to_thread(thread.join, max(0.0, deadline - time.monotonic()))


class SourceReaderBase(SourceReader[T, SplitT], Generic[E, T, SplitT, StateT]):
    """A source reader built from a fetcher manager and a record emitter.

    A connector's subclass implements only:

    - :meth:`initialized_state`: the mutable state of a newly assigned split;
    - :meth:`to_split`: the immutable split (with its position) from a state, for checkpoints;
    - :meth:`on_split_finished` (optional): cleanup when splits end.

    Split requests: the reader asks its enumerator for a split at start when it has none, and
    whenever its last split finishes (pull-based enumerators answer; push-based ones may ignore
    the request). ``poll_next`` emits the records of one split of one fetch per call, through
    that split's own output (see the module docstring).

    Args:
        context: the reader context.
        fetcher_manager: runs the split readers.
        record_emitter: decodes elements and advances split states.
    """

    def __init__(
        self,
        context: SourceReaderContext,
        fetcher_manager: SplitFetcherManager[E, SplitT],
        record_emitter: RecordEmitter[E, T, StateT],
    ) -> None:
        self.context = context
        self._manager = fetcher_manager
        self._emitter = record_emitter
        self._states: dict[str, StateT] = {}
        self._pending: deque[tuple[str, Sequence[E]]] = deque()
        self._pending_finished: Collection[str] = ()
        self._outputs: dict[str, ReaderOutput[T]] = {}
        self._without_output: list[str] = []
        self._no_more_splits = False
        self._requested = False
        self._fetch_lag: float | None = None
        group = context.metric_group
        self._records_in = group.counter("numRecordsIn")
        self._bytes_in = group.counter("numBytesIn")
        self.records_in_errors = group.counter("numRecordsInErrors")
        """Bad records count here; a format bound with ``fmt.deserializer(context.metric_group)``
        counts into this same counter."""
        group.gauge("currentFetchEventTimeLag", lambda: self._fetch_lag)

    # -- hooks -----------------------------------------------------------------------------
    @abstractmethod
    def initialized_state(self, split: SplitT) -> StateT:
        """The mutable state of a split just assigned (or restored)."""

    @abstractmethod
    def to_split(self, split_id: str, state: StateT) -> SplitT:
        """The immutable split for ``state`` (its position is the next element to emit)."""

    def on_split_finished(self, finished: Mapping[str, StateT]) -> None:
        """Splits reached their end; their states are dropped after this call."""

    # -- SourceReader ----------------------------------------------------------------------
    async def start(self) -> None:
        """Ask for a first split unless splits were restored."""
        if not self._states:
            self._request_split()

    def add_splits(self, splits: Sequence[SplitT]) -> None:
        """Track and start reading ``splits``."""
        self._requested = False
        for split in splits:
            self._states[split.split_id] = self.initialized_state(split)
            self._without_output.append(split.split_id)
        self._manager.add_splits(splits)

    def notify_no_more_splits(self) -> None:
        """No more splits will come; the reader ends when its splits are done."""
        self._no_more_splits = True
        self._manager.queue.wake()

    def poll_next(self, output: ReaderOutput[T]) -> InputStatus:
        """Emit the records of one split of the next fetch."""
        self._manager.check_errors()
        if self._without_output:
            self._open_split_outputs(output)
        if not self._pending and not self._pending_finished:
            polled = self._manager.queue.poll()
            if polled is not None:
                self._take(polled[1])
        if self._pending:
            split_id, elements = self._pending.popleft()
            state = self._states.get(split_id)
            if state is not None:
                self._emitter.emit_batch(elements, self._outputs[split_id], state)
                self._records_in.inc(len(elements))
            return InputStatus.MORE_AVAILABLE
        if self._pending_finished:
            self._finish(self._pending_finished, output)
            self._pending_finished = ()
            return InputStatus.MORE_AVAILABLE
        if len(self._manager.queue):
            return InputStatus.MORE_AVAILABLE
        if self._no_more_splits and not self._states:
            return InputStatus.END_OF_INPUT
        return InputStatus.NOTHING_AVAILABLE

    def _open_split_outputs(self, output: ReaderOutput[T]) -> None:
        """Create the outputs of the splits added since the last poll (each holds back the watermark)."""
        for split_id in self._without_output:
            if split_id in self._states and split_id not in self._outputs:
                self._outputs[split_id] = output.split_output(split_id)
        self._without_output = []

    def _take(self, fetched: RecordsBySplit[E]) -> None:
        self._pending.extend((sid, recs) for sid, recs in fetched.records.items() if recs)
        self._pending_finished = fetched.finished_splits
        if fetched.size_in_bytes:
            self._bytes_in.inc(fetched.size_in_bytes)
        if fetched.max_event_time is not None:
            self._fetch_lag = fetched.fetched_at * 1000.0 - fetched.max_event_time

    def _finish(self, split_ids: Collection[str], output: ReaderOutput[T]) -> None:
        finished = {sid: self._states.pop(sid) for sid in split_ids if sid in self._states}
        for split_id in finished:
            if self._outputs.pop(split_id, None) is not None:
                output.release_split_output(split_id)
        self._manager.splits_finished(split_ids)
        if finished:
            self.on_split_finished(finished)
        if not self._states and not self._no_more_splits:
            self._request_split()

    def _request_split(self) -> None:
        if not self._requested:
            self._requested = True
            self.context.send_split_request()

    def is_available(self) -> asyncio.Future[None]:
        """Done when a fetch is queued, a fetcher failed, or the input may have ended."""
        return self._manager.queue.available()

    def snapshot_state(self, checkpoint_id: int) -> list[SplitT]:
        """Every unfinished split at the position of its next element to emit."""
        return [self.to_split(sid, state) for sid, state in self._states.items()]

    def pause_or_resume_splits(self, to_pause: Sequence[str], to_resume: Sequence[str]) -> None:
        """Pause or resume fetching splits (watermark alignment)."""
        self._manager.pause_or_resume_splits(to_pause, to_resume)

    async def close(self) -> None:
        """Stop the fetchers."""
        await self._manager.close()
