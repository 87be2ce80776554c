"""What the Kinesis and DynamoDB Streams sources share: options, and the FLIP-27 source wiring."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from headwater.connectors.aws._aws import AwsClientOptions
from headwater.connectors.aws._enumerator import (
    AssignmentContext,
    ShardSplitEnumerator,
    uniform_shard_assigner,
)
from headwater.connectors.aws._reader import (
    PollingShardSplitReader,
    ShardRecordEmitter,
    ShardSourceReader,
    ShardSplitReader,
)
from headwater.connectors.aws._shards import (
    ENUMERATOR_STATE_SERIALIZER,
    SPLIT_SERIALIZER,
    EnumeratorState,
    ShardSplit,
    StartingPosition,
)
from headwater.connectors.aws._stream_api import StreamApi
from headwater.connectors.base import OptionsModel, SplitFetcherManager
from headwater.core import (
    Boundedness,
    ConfigurationError,
    Counter,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)
from pydantic import Field, WithJsonSchema, model_validator
from typing_extensions import override

__all__ = ["ShardSource", "ShardSourceOptions"]

T = TypeVar("T")
"""The type of the records the source emits."""


class ShardSourceOptions(OptionsModel):
    """Options shared by the shard sources.

    Args:
        stream_arn: the stream's ARN.
        client: region, endpoint, credentials and botocore retries (``retry_mode``).
        initial_position: where the shards found at the job's first start are read from:
            ``TRIM_HORIZON`` (the oldest record), ``LATEST`` (records arriving after the start) or
            ``AT_TIMESTAMP`` (Kinesis only). Shards found later, and restored shards, are not
            affected (they start at their beginning, or after their checkpointed record).
        initial_timestamp: the timestamp of ``AT_TIMESTAMP`` (timezone-aware).
        shard_discovery_interval: how often to look for new shards (after resharding); ``None``
            looks only at start and when a shard ends.
        records_per_fetch: the ``Limit`` of each GetRecords call; ``None`` for the service's
            maximum.
        idle_poll_interval: the wait before polling again a shard whose last answer was empty.
        bounded: read each shard until it is caught up (or closed), then end; for tests and
            backfills. Shards created after the start are not read then.
        shard_assigner: picks the reader of each shard (a :class:`ShardAssigner`; default: by
            hash-key range).
    """

    stream_arn: str = Field(min_length=1, pattern=r"^arn:")
    client: AwsClientOptions = AwsClientOptions()
    initial_position: Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"] = "LATEST"
    initial_timestamp: datetime | None = None
    shard_discovery_interval: timedelta | None = timedelta(seconds=10)
    records_per_fetch: int | None = Field(default=None, ge=1)
    idle_poll_interval: timedelta = timedelta(milliseconds=250)
    bounded: bool = False
    shard_assigner: Annotated[
        Callable[[ShardSplit, AssignmentContext], int],
        WithJsonSchema({"type": "string", "title": "ShardAssigner"}),
    ] = uniform_shard_assigner

    @model_validator(mode="after")
    def _check(self) -> ShardSourceOptions:
        if self.initial_position == "AT_TIMESTAMP":
            if self.initial_timestamp is None or self.initial_timestamp.tzinfo is None:
                raise ValueError(
                    "initial_position AT_TIMESTAMP needs a timezone-aware initial_timestamp"
                )
        elif self.initial_timestamp is not None:
            raise ValueError("initial_timestamp is only used with initial_position AT_TIMESTAMP")
        if self.shard_discovery_interval is not None and self.shard_discovery_interval <= timedelta(
            0
        ):
            raise ValueError("shard_discovery_interval must be positive (or None)")
        if self.idle_poll_interval < timedelta(0):
            raise ValueError("idle_poll_interval must not be negative")
        return self

    def starting_position(self) -> StartingPosition:
        """The position of the shards of the first discovery."""
        if self.initial_timestamp is not None:
            millis = int(self.initial_timestamp.timestamp() * 1000)
            return StartingPosition("AT_TIMESTAMP", str(millis))
        return StartingPosition(self.initial_position)


class ShardSource(Source[T, ShardSplit, EnumeratorState], Generic[T]):
    """A FLIP-27 source over the shards of a stream; a subclass names its API and its emitter.

    Every shard is a split; its position (the last sequence number emitted) is checkpointed, and
    restored shards continue right after it. Children are read after their parents (see
    :class:`ShardSplitEnumerator`).
    """

    api_class: ClassVar[type[StreamApi]]
    """The service API of the source."""

    def __init__(self, options: ShardSourceOptions) -> None:
        if not isinstance(options, ShardSourceOptions):
            raise ConfigurationError(
                f"{self.api_class.connector}: expected options of type ShardSourceOptions, "
                f"got {type(options).__name__}"
            )
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"

    @abstractmethod
    def create_emitter(self, errors: Counter) -> ShardRecordEmitter[T]:
        """The record emitter of a reader (``errors`` is its ``numRecordsInErrors``)."""

    def create_api(self) -> StreamApi:
        """A new service API with its own client (blocking)."""
        return self.api_class(self.options.client.create_client(self.api_class.service))

    @property
    @override
    def boundedness(self) -> Boundedness:
        return Boundedness.BOUNDED if self.options.bounded else Boundedness.CONTINUOUS_UNBOUNDED

    def _enumerator(
        self, context: SplitEnumeratorContext[ShardSplit], state: EnumeratorState | None
    ) -> ShardSplitEnumerator:
        interval = self.options.shard_discovery_interval
        return ShardSplitEnumerator(
            context,
            stream_arn=self.options.stream_arn,
            initial=self.options.starting_position(),
            api_factory=self.create_api,
            assigner=self.options.shard_assigner,
            discovery_interval=None if interval is None else interval.total_seconds(),
            bounded=self.options.bounded,
            state=state,
        )

    @override
    def create_enumerator(
        self, context: SplitEnumeratorContext[ShardSplit]
    ) -> SplitEnumerator[ShardSplit, EnumeratorState]:
        return self._enumerator(context, None)

    @override
    def restore_enumerator(
        self, context: SplitEnumeratorContext[ShardSplit], state: EnumeratorState
    ) -> SplitEnumerator[ShardSplit, EnumeratorState]:
        return self._enumerator(context, state)

    def create_split_reader(
        self, millis_behind: dict[str, int | None]
    ) -> ShardSplitReader[Any, Any]:
        """The split reader of one subtask (default: polling with GetRecords).

        Args:
            millis_behind: where the split reader publishes ``MillisBehindLatest`` per shard.
        """
        options = self.options
        limit = options.records_per_fetch or self.api_class.max_records_per_call
        return PollingShardSplitReader(
            self.create_api,
            limit=min(limit, self.api_class.max_records_per_call),
            idle_interval=options.idle_poll_interval.total_seconds(),
            bounded=options.bounded,
            millis_behind=millis_behind,
        )

    @override
    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, ShardSplit]:
        millis_behind: dict[str, int | None] = {}
        manager: SplitFetcherManager[dict[str, Any], ShardSplit] = SplitFetcherManager(
            lambda: self.create_split_reader(millis_behind)
        )
        emitter = self.create_emitter(context.metric_group.counter("numRecordsInErrors"))
        return ShardSourceReader(context, manager, emitter, millis_behind)

    @override
    def split_serializer(self) -> VersionedSerializer[ShardSplit]:
        return SPLIT_SERIALIZER

    @override
    def enumerator_state_serializer(self) -> VersionedSerializer[EnumeratorState]:
        return ENUMERATOR_STATE_SERIALIZER
