"""KinesisStreamsSource: a FLIP-27 source over the shards of a Kinesis data stream.

It polls with GetRecords, or reads with enhanced fan-out (SubscribeToShard) when
``enhanced_fan_out`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from headwater.connectors.aws._fan_out import (
    EnhancedFanOutOptions,
    FanOutKinesisApi,
    FanOutShardSplitReader,
)
from headwater.connectors.aws._kinesis_api import KinesisApi
from headwater.connectors.aws._kpl import MAGIC, deaggregate
from headwater.connectors.aws._reader import Record, ShardRecordEmitter, ShardSplitReader
from headwater.connectors.aws._source_base import ShardSource, ShardSourceOptions
from headwater.connectors.aws._stream_api import StreamApi
from headwater.connectors.base import Format
from headwater.core import ConfigurationError, Counter, ReaderOutput, SerializationError
from typing_extensions import override

__all__ = ["KinesisApi", "KinesisRecord", "KinesisStreamsSource", "KinesisStreamsSourceOptions"]

T = TypeVar("T")
"""The type of the records the source emits."""


@dataclass(frozen=True, slots=True)
class KinesisRecord:
    """A Kinesis record with where it was read from.

    Attributes:
        data: the payload.
        partition_key: the partition key it was written with.
        sequence_number: its sequence number in the shard.
        approximate_arrival_timestamp: when Kinesis stored it, in epoch milliseconds (also the
            record's event timestamp in the job).
        shard_id: the shard it was read from.
        stream_arn: the stream.
        sub_sequence_number: its index in the KPL-aggregated record it was written in (which
            carries the sequence number), ``None`` for a record written on its own.
    """

    data: bytes
    partition_key: str
    sequence_number: str
    approximate_arrival_timestamp: int | None
    shard_id: str
    stream_arn: str
    sub_sequence_number: int | None = None


class KinesisStreamsSourceOptions(ShardSourceOptions):
    """Options of :class:`KinesisStreamsSource` (see :class:`ShardSourceOptions` for the others).

    Args:
        enhanced_fan_out: read with enhanced fan-out through this stream consumer instead of
            polling (``None``, the default). ``records_per_fetch`` and ``idle_poll_interval``
            apply to polling only.
        deaggregate: split records aggregated by the Kinesis Producer Library into the user
            records they hold (the default, as the KCL does); ``False`` emits them as written.
    """

    enhanced_fan_out: EnhancedFanOutOptions | None = None
    deaggregate: bool = True


class _KinesisEmitter(ShardRecordEmitter[T]):
    def __init__(
        self,
        stream_arn: str,
        value_format: Format[T] | None,
        record_deserializer: Callable[[KinesisRecord], T] | None,
        errors: Counter,
        deaggregate: bool,
    ) -> None:
        super().__init__(KinesisApi)
        self._stream_arn = stream_arn
        self._deaggregate = deaggregate
        self._format = value_format
        self._deserializer = record_deserializer
        self._errors = errors

    @override
    def emit_records(
        self, records: Sequence[Record], output: ReaderOutput[T], shard_id: str
    ) -> None:
        collect = output.collect
        event_time = KinesisApi.event_time
        if self._deaggregate and any(r["Data"].startswith(MAGIC) for r in records):
            records = deaggregate(records, shard_id)
        if self._deserializer is not None:
            deserialize = self._deserializer
            for r in records:
                record = KinesisRecord(
                    r["Data"],
                    r["PartitionKey"],
                    r["SequenceNumber"],
                    event_time(r),
                    shard_id,
                    self._stream_arn,
                    r.get("SubSequenceNumber"),
                )
                try:
                    value = deserialize(record)
                except Exception as exc:
                    self._errors.inc()
                    raise SerializationError(
                        f"kinesis source: cannot deserialize the record {r['SequenceNumber']} of "
                        f"shard {shard_id}: {type(exc).__name__}: {exc}"
                    ) from exc
                collect(value, record.approximate_arrival_timestamp)
            return
        if self._format is None:
            payloads = cast("list[T]", [r["Data"] for r in records])
            output.collect_batch(payloads, [event_time(r) for r in records])
            return
        values, timestamps = self._format.deserialize_timestamped(
            [r["Data"] for r in records],
            [event_time(r) for r in records],
            position=lambda i: f"{shard_id}@{records[i]['SequenceNumber']}",
            errors=self._errors,
        )
        output.collect_batch(values, timestamps)


class KinesisStreamsSource(ShardSource[T], Generic[T]):
    """Reads a Kinesis data stream, addressed by ARN; every shard is a split.

    It polls with GetRecords, or, with ``enhanced_fan_out`` set, reads through a stream consumer
    with SubscribeToShard (its own 2 MB/s per shard, records pushed as they arrive; the consumer
    is registered by the job or managed by the user, see :class:`EnhancedFanOutOptions`).

    Example::

        from headwater.connectors.aws import KinesisStreamsSource, KinesisStreamsSourceOptions

        source = KinesisStreamsSource(
            KinesisStreamsSourceOptions(
                stream_arn="arn:aws:kinesis:eu-west-1:123456789012:stream/clicks",
                initial_position="TRIM_HORIZON",
            ),
            value_format=JsonFormat(),              # from headwater.connectors.base
        )
        env.from_source(source).map(...)

    Guarantee: exactly-once reading. Each shard's position (the last sequence number emitted) is
    checkpointed; a restored shard continues right after it. Order: records of one partition key
    come out in write order, also across resharding (split, merge, ``UpdateShardCount``): a child
    shard is read only after its parents were read to their end, across checkpoints and restarts.
    Timestamps: each record carries its ``ApproximateArrivalTimestamp``.

    Args:
        options: the stream, the client, start position, discovery, polling.
        value_format: decodes the payloads (a connector-base format, with its error policy).
        record_deserializer: turns a whole :class:`KinesisRecord` into a record; exclusive with
            ``value_format``. With neither, the payloads are emitted as ``bytes``.
    """

    api_class = KinesisApi

    def __init__(
        self,
        options: KinesisStreamsSourceOptions,
        *,
        value_format: Format[T] | None = None,
        record_deserializer: Callable[[KinesisRecord], T] | None = None,
    ) -> None:
        if not isinstance(options, KinesisStreamsSourceOptions):
            raise ConfigurationError(
                f"kinesis source: expected KinesisStreamsSourceOptions, got {type(options).__name__}"
            )
        super().__init__(options)
        self.fan_out = options.enhanced_fan_out
        self._deaggregate = options.deaggregate
        if value_format is not None and record_deserializer is not None:
            raise ConfigurationError(
                "kinesis source: set at most one of 'value_format' and 'record_deserializer'"
            )
        self._value_format = value_format
        self._record_deserializer = record_deserializer

    @override
    def create_api(self) -> StreamApi:
        client = self.options.client.create_client(KinesisApi.service)
        if self.fan_out is None:
            return KinesisApi(client)
        return FanOutKinesisApi(client, self.fan_out)

    @override
    def create_split_reader(
        self, millis_behind: dict[str, int | None]
    ) -> ShardSplitReader[Any, Any]:
        if self.fan_out is None:
            return super().create_split_reader(millis_behind)
        interval = self.options.shard_discovery_interval
        return FanOutShardSplitReader(
            lambda: cast("FanOutKinesisApi", self.create_api()),
            bounded=self.options.bounded,
            millis_behind=millis_behind,
            end_check_interval=None if interval is None else interval.total_seconds(),
        )

    @override
    def create_emitter(self, errors: Counter) -> ShardRecordEmitter[T]:
        return _KinesisEmitter(
            self.options.stream_arn,
            self._value_format,
            self._record_deserializer,
            errors,
            self._deaggregate,
        )
