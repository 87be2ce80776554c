"""The Source API (FLIP-27): a split enumerator that discovers and assigns splits, and readers that read them.

A :class:`Source` is a cheap, immutable description (topics, a query, a collection). At run time the
runtime builds one :class:`SplitEnumerator` (in the job's coordinator) and one :class:`SourceReader`
per parallel subtask. The enumerator hands splits to readers; readers report their splits and
positions in every checkpoint; on restore the enumerator and readers are rebuilt from that state.

Threading contract: every method here is called on the job's event loop and must not block it.
Blocking client libraries run through ``context.run_blocking`` (a bounded thread pool).
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from headwater.core._config import CheckpointConfig
from headwater.core._metrics import MetricGroup
from headwater.core._serialization import VersionedSerializer

__all__ = [
    "Boundedness",
    "InputStatus",
    "ReaderOutput",
    "Source",
    "SourceReader",
    "SourceReaderContext",
    "SourceSplit",
    "SplitEnumerator",
    "SplitEnumeratorContext",
]

T = TypeVar("T")
"""The type of the records a source produces."""
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)
SplitT = TypeVar("SplitT", bound="SourceSplit")
"""The split type of a source (a frozen dataclass with a ``split_id``)."""
EnumStateT = TypeVar("EnumStateT")
"""The checkpointed state of a source's split enumerator."""
SplitT_contra = TypeVar("SplitT_contra", bound="SourceSplit", contravariant=True)
R = TypeVar("R")


class Boundedness(enum.Enum):
    """Whether a source ends."""

    BOUNDED = "bounded"
    """The source reads a finite amount of data and then ends."""
    CONTINUOUS_UNBOUNDED = "continuous_unbounded"
    """The source never ends on its own."""


class InputStatus(enum.Enum):
    """What :meth:`SourceReader.poll_next` found."""

    MORE_AVAILABLE = "more_available"
    """Records were emitted and more can be polled at once."""
    NOTHING_AVAILABLE = "nothing_available"
    """Nothing to emit now; wait on :meth:`SourceReader.is_available` before polling again."""
    END_OF_INPUT = "end_of_input"
    """The reader has read all its splits and will get no more."""


class SourceSplit(Protocol):
    """A unit of work of a source (a partition, a shard, a file, a key range).

    Splits are immutable; a reader keeps the mutable position of each split it owns and returns
    updated split objects (with ``dataclasses.replace``) from :meth:`SourceReader.snapshot_state`.
    """

    @property
    def split_id(self) -> str:
        """An identifier unique within the source."""
        ...


class ReaderOutput(Protocol[T_contra]):
    """Where a reader emits its records. Records are buffered and sent downstream in batches."""

    def collect(self, record: T_contra, timestamp: int | None = None, /) -> None:
        """Emit one record, with its event timestamp in milliseconds if it has one."""
        ...

    def collect_batch(
        self, records: Sequence[T_contra], timestamps: Sequence[int | None] | None = None, /
    ) -> None:
        """Emit many records at once (the fast path: no per-record call).

        ``timestamps``, if given, holds each record's event timestamp (ms) in the same order.
        """
        ...

    def emit_watermark(self, timestamp: int, /) -> None:
        """Declare that no record with a timestamp at or before ``timestamp`` will follow."""
        ...

    def mark_idle(self) -> None:
        """Declare this output idle: it will not hold back the watermark until it emits again."""
        ...

    def split_output(self, split_id: str, /) -> ReaderOutput[T_contra]:
        """An output for one split, with its own watermark (per-split watermarks, alignment).

        Records emitted through it join the same batches; the task's watermark is the minimum over
        the split outputs that are not idle. Release it when the split is finished.
        """
        ...

    def release_split_output(self, split_id: str, /) -> None:
        """The split is finished: its output no longer holds back the watermark."""
        ...


class SourceReaderContext(Protocol):
    """What the runtime offers a reader."""

    @property
    def subtask_index(self) -> int:
        """The index of this reader's subtask, from 0."""
        ...

    @property
    def parallelism(self) -> int:
        """The number of parallel readers of this source."""
        ...

    @property
    def metric_group(self) -> MetricGroup:
        """The metric group of this reader's operator and subtask."""
        ...

    def send_split_request(self) -> None:
        """Ask the enumerator for a split (it answers with ``add_splits`` or ``notify_no_more_splits``)."""
        ...

    def send_source_event(self, event: Any, /) -> None:
        """Send a custom event to the enumerator."""
        ...

    def run_blocking(self, fn: Callable[..., R], /, *args: Any) -> Awaitable[R]:
        """Run a blocking call on the job's bounded thread pool."""
        ...


class SplitEnumeratorContext(Protocol[SplitT_contra]):
    """What the runtime offers a split enumerator."""

    @property
    def parallelism(self) -> int:
        """The number of parallel readers of the source."""
        ...

    def registered_readers(self) -> frozenset[int]:
        """The subtask indexes of the readers that have registered so far."""
        ...

    def assign_splits(self, assignment: Mapping[int, Sequence[SplitT_contra]], /) -> None:
        """Hand splits to readers (``{subtask index: splits}``)."""
        ...

    def signal_no_more_splits(self, subtask_index: int, /) -> None:
        """Tell a reader that it will get no more splits; a bounded reader then ends when done."""
        ...

    def send_event_to_reader(self, subtask_index: int, event: Any, /) -> None:
        """Send a custom event to one reader."""
        ...

    def call_periodically(
        self, fn: Callable[[], Awaitable[None]], interval: timedelta, /
    ) -> asyncio.Task[None]:
        """Run ``fn`` every ``interval`` on the event loop (periodic split discovery).

        An exception raised by ``fn`` fails the job, and the restart strategy applies. Cancel the
        returned task to stop the calls (e.g. when a hybrid source switches away).
        """
        ...

    def run_blocking(self, fn: Callable[..., R], /, *args: Any) -> Awaitable[R]:
        """Run a blocking call on the job's bounded thread pool."""
        ...


class SplitEnumerator(ABC, Generic[SplitT, EnumStateT]):
    """Discovers splits and assigns them to readers. One instance per source, in the coordinator."""

    async def start(self) -> None:
        """Start discovery. Called once, before any other method but ``add_reader``."""

    @abstractmethod
    def handle_split_request(self, subtask_index: int) -> None:
        """A reader asked for a split."""

    @abstractmethod
    def add_reader(self, subtask_index: int) -> None:
        """A reader registered (at start, and again after every restore)."""

    @abstractmethod
    def add_splits_back(self, splits: Sequence[SplitT], subtask_index: int) -> None:
        """Splits assigned to a reader since the last completed checkpoint come back after a failure."""

    @abstractmethod
    def snapshot_state(self, checkpoint_id: int) -> EnumStateT:
        """The enumerator's state for checkpoint ``checkpoint_id`` (must not include assigned splits)."""

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is complete."""

    def handle_source_event(self, subtask_index: int, event: Any) -> None:
        """A reader sent a custom event."""

    async def close(self) -> None:
        """Release resources. May not be called if the process dies."""


class SourceReader(ABC, Generic[T, SplitT]):
    """Reads the splits assigned to one subtask.

    The runtime calls :meth:`poll_next` in a loop while it returns ``MORE_AVAILABLE``; after
    ``NOTHING_AVAILABLE`` it awaits :meth:`is_available` before polling again. ``poll_next`` must not
    block and should emit at most about one batch (a few thousand records) per call.
    :meth:`snapshot_state` is called between two ``poll_next`` calls and must describe exactly the
    records emitted so far: the split positions point at the first record *not yet* emitted.
    """

    async def start(self) -> None:
        """Called once before the first poll; typical readers ask for their first split here."""

    @abstractmethod
    def poll_next(self, output: ReaderOutput[T]) -> InputStatus:
        """Emit available records into ``output`` without blocking."""

    @abstractmethod
    def is_available(self) -> asyncio.Future[None]:
        """A future that is done when :meth:`poll_next` may have something to emit."""

    @abstractmethod
    def add_splits(self, splits: Sequence[SplitT]) -> None:
        """Splits assigned by the enumerator, or restored from a checkpoint."""

    @abstractmethod
    def notify_no_more_splits(self) -> None:
        """The enumerator will assign no more splits to this reader."""

    @abstractmethod
    def snapshot_state(self, checkpoint_id: int) -> list[SplitT]:
        """Every split this reader owns, with its current position (finished splits excluded)."""

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is complete (e.g. commit offsets for monitoring)."""

    def pause_or_resume_splits(self, to_pause: Sequence[str], to_resume: Sequence[str]) -> None:
        """Pause or resume splits by id, for watermark alignment. The default ignores the request."""

    def handle_source_event(self, event: Any) -> None:
        """The enumerator sent a custom event."""

    async def close(self) -> None:
        """Release resources. May not be called if the process dies."""


class Source(ABC, Generic[T, SplitT, EnumStateT]):
    """A cheap, picklable description of where records come from.

    Do not open connections or build per-split state in the constructor: that belongs in the
    enumerator and the readers, which the runtime rebuilds from checkpointed state.
    """

    @property
    @abstractmethod
    def boundedness(self) -> Boundedness:
        """Whether this source ends."""

    @property
    def expected_records(self) -> int | None:
        """How many records a bounded source emits, if known up front (for progress bars)."""
        return None

    @abstractmethod
    def create_enumerator(
        self, context: SplitEnumeratorContext[SplitT]
    ) -> SplitEnumerator[SplitT, EnumStateT]:
        """A new enumerator for a job started without state."""

    @abstractmethod
    def restore_enumerator(
        self, context: SplitEnumeratorContext[SplitT], state: EnumStateT
    ) -> SplitEnumerator[SplitT, EnumStateT]:
        """An enumerator rebuilt from checkpointed state."""

    @abstractmethod
    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, SplitT]:
        """A reader for one subtask; it receives its splits through ``add_splits``."""

    def check_checkpointing(self, checkpointing: CheckpointConfig) -> None:
        """Refuse checkpoint settings this source cannot work with (called when the job is built).

        Raise :class:`~headwater.core.ConfigurationError` naming the setting to change; e.g. a
        source that acknowledges messages when checkpoints complete, in a job without them.
        """
        del checkpointing

    @abstractmethod
    def split_serializer(self) -> VersionedSerializer[SplitT]:
        """The serializer of this source's splits (with their positions)."""

    @abstractmethod
    def enumerator_state_serializer(self) -> VersionedSerializer[EnumStateT]:
        """The serializer of this source's enumerator state."""
