"""The Sink API (Sink V2): writers per subtask, and committers for two-phase sinks.

A :class:`Sink` creates one :class:`SinkWriter` per parallel subtask. At every checkpoint the
runtime calls :meth:`SinkWriter.flush` and :meth:`SinkWriter.snapshot_state`; a two-phase sink's
writer also hands over *committables* from :meth:`CommittingSinkWriter.prepare_commit`. The
committables are stored in the checkpoint and given to the :class:`Committer` only after the
checkpoint is complete; after a failure the committables of the last completed checkpoint are
committed again, so commits must be idempotent.

Delivery guarantees by design:

- ``NONE``: records may be lost or duplicated on failure.
- ``AT_LEAST_ONCE``: the writer flushes everything at each checkpoint; after a failure records since
  the last checkpoint are written again.
- ``EXACTLY_ONCE``: two-phase commit; only records of completed checkpoints become visible.

Threading contract: every method is called on the job's event loop and must not block it; use
``context.run_blocking`` for blocking clients.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from headwater.core._config import CheckpointConfig
from headwater.core._metrics import MetricGroup
from headwater.core._serialization import VersionedSerializer

__all__ = [
    "CommitRequest",
    "Committer",
    "CommittingSinkWriter",
    "DeliveryGuarantee",
    "Sink",
    "SinkWriter",
    "TwoPhaseCommittingSink",
    "WriterInitContext",
]

IN = TypeVar("IN")
"""The type of the records a sink consumes."""
CommT = TypeVar("CommT")
"""The committable type of a two-phase sink (e.g. a transaction id, a temporary file)."""
R = TypeVar("R")


class DeliveryGuarantee(enum.Enum):
    """What a sink promises about each record after failures and restarts."""

    NONE = "none"
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"


class WriterInitContext(Protocol):
    """What the runtime offers a writer or committer."""

    @property
    def subtask_index(self) -> int:
        """The index of this writer's subtask, from 0."""
        ...

    @property
    def parallelism(self) -> int:
        """The number of parallel writers of this sink."""
        ...

    @property
    def attempt(self) -> int:
        """How many times the job was restarted before this run (0 on the first run)."""
        ...

    @property
    def restored_checkpoint_id(self) -> int | None:
        """The checkpoint this run was restored from, if any."""
        ...

    @property
    def job_name(self) -> str:
        """The job's name."""
        ...

    @property
    def operator_uid(self) -> str:
        """The sink's uid: stable across runs of the job (scope transaction ids with it)."""
        ...

    @property
    def metric_group(self) -> MetricGroup:
        """The metric group of this sink's operator and subtask."""
        ...

    def run_blocking(self, fn: Callable[..., R], /, *args: Any) -> Awaitable[R]:
        """Run a blocking call on the job's bounded thread pool."""
        ...


class SinkWriter(ABC, Generic[IN]):
    """Writes the records of one subtask.

    ``write_batch`` gets records in the order they arrived, a batch at a time; it may buffer.
    """

    @abstractmethod
    async def write_batch(self, records: Sequence[IN]) -> None:
        """Write (or buffer) a batch of records."""

    async def flush(self, end_of_input: bool) -> None:
        """Make everything written so far durable (at-least-once) or ready to pre-commit.

        Called before every checkpoint, and with ``end_of_input=True`` once after the last record.
        """

    def snapshot_state(self, checkpoint_id: int) -> list[Any]:
        """Writer state to keep in the checkpoint (e.g. still-buffered entries). Default: none."""
        return []

    def suspend(self) -> None:
        """The job stops with the savepoint just snapshotted: send nothing more until closed.

        What the writer still buffers is in the savepoint and is sent by the restored job;
        sending it now (from a timer, say) would deliver it twice. Default: nothing to do, for
        writers that only send from ``write_batch`` and ``flush``.
        """

    def resume(self) -> None:
        """The stop failed (its savepoint expired): the job goes on; undo :meth:`suspend`."""

    async def close(self) -> None:
        """Release resources. May not be called if the process dies."""


class CommittingSinkWriter(SinkWriter[IN], Generic[IN, CommT]):
    """A writer of a two-phase sink."""

    @abstractmethod
    async def prepare_commit(self) -> list[CommT]:
        """Pre-commit everything written since the last call and return its committables.

        Called after :meth:`flush` at each checkpoint. Records written afterwards belong to the
        next checkpoint.
        """


class CommitRequest(Generic[CommT]):
    """One committable handed to a :class:`Committer`, with the verbs that report the outcome.

    A request on which no verb was called counts as committed.
    """

    __slots__ = ("_outcome", "committable", "error", "number_of_retries")

    def __init__(self, committable: CommT, number_of_retries: int = 0) -> None:
        self.committable = committable
        self.number_of_retries = number_of_retries
        self._outcome = "committed"
        self.error: BaseException | None = None

    @property
    def outcome(self) -> str:
        """``committed``, ``already_committed``, ``retry``, ``failed_known`` or ``failed_unknown``."""
        return self._outcome

    def signal_already_committed(self) -> None:
        """The committable was committed before (an idempotent re-commit after a restore)."""
        self._outcome = "already_committed"

    def retry_later(self) -> None:
        """Try this committable again at the next checkpoint completion."""
        self._outcome = "retry"

    def update_and_retry_later(self, committable: CommT) -> None:
        """Replace the committable and try again later."""
        self.committable = committable
        self._outcome = "retry"

    def signal_failed_with_known_reason(self, error: BaseException) -> None:
        """The commit failed for a reason the sink understands; the data is lost, the job fails."""
        self._outcome = "failed_known"
        self.error = error

    def signal_failed_with_unknown_reason(self, error: BaseException) -> None:
        """The commit failed for an unexpected reason; the job fails."""
        self._outcome = "failed_unknown"
        self.error = error


class Committer(ABC, Generic[CommT]):
    """Commits committables of completed checkpoints. Commits must be idempotent."""

    @abstractmethod
    async def commit(self, requests: Sequence[CommitRequest[CommT]]) -> None:
        """Commit each request, reporting anything but success through the request's verbs."""

    async def close(self) -> None:
        """Release resources."""


class Sink(ABC, Generic[IN]):
    """A cheap, picklable description of where records go."""

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        """The guarantee this sink is configured to give. Default: at-least-once."""
        return DeliveryGuarantee.AT_LEAST_ONCE

    @abstractmethod
    def create_writer(self, context: WriterInitContext) -> SinkWriter[IN]:
        """A writer for one subtask of a job started without writer state."""

    def restore_writer(self, context: WriterInitContext, states: list[Any]) -> SinkWriter[IN]:
        """A writer rebuilt from checkpointed writer state (see :meth:`writer_state_serializer`)."""
        del states
        return self.create_writer(context)

    def writer_state_serializer(self) -> VersionedSerializer[Any] | None:
        """The serializer of writer state, or ``None`` for a stateless writer."""
        return None

    def check_checkpointing(self, checkpointing: CheckpointConfig) -> None:
        """Refuse checkpoint settings this sink cannot work with (called when the job is built).

        Raise :class:`~headwater.core.ConfigurationError` naming the setting to change; e.g. a
        transactional sink whose transactions would time out between two checkpoints.
        """
        del checkpointing


class TwoPhaseCommittingSink(Sink[IN], Generic[IN, CommT]):
    """A sink whose writers pre-commit at checkpoints and whose committer commits afterwards."""

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        """Two-phase sinks give exactly-once unless configured otherwise."""
        return DeliveryGuarantee.EXACTLY_ONCE

    @abstractmethod
    def create_writer(self, context: WriterInitContext) -> CommittingSinkWriter[IN, CommT]:
        """A two-phase writer for one subtask."""

    def restore_writer(
        self, context: WriterInitContext, states: list[Any]
    ) -> CommittingSinkWriter[IN, CommT]:
        """A two-phase writer rebuilt from checkpointed writer state."""
        del states
        return self.create_writer(context)

    @abstractmethod
    def create_committer(self, context: WriterInitContext) -> Committer[CommT]:
        """The committer of one subtask."""

    @abstractmethod
    def committable_serializer(self) -> VersionedSerializer[CommT]:
        """The serializer of committables, stored in checkpoints until committed."""
