"""headwater-core: the DataStream API, the FLIP-27 Source and Sink V2 APIs, and the local executor.

Example::

    from headwater.core import StreamEnvironment

    env = StreamEnvironment(parallelism=2)
    doubled = env.from_collection(range(10)).map(lambda x: x * 2).filter(lambda x: x % 3 == 0)
    print(doubled.execute_and_collect())
"""

from headwater.core._async_io import AsyncDataStream, AsyncRetryStrategy
from headwater.core._builtins import (
    CollectionSource,
    CollectSink,
    DataGenSource,
    DiscardingSink,
    IterableSource,
    NumberSequenceSource,
    PrintSink,
    RangeSplit,
)
from headwater.core._changelog import RowKind
from headwater.core._config import (
    CheckpointConfig,
    ExponentialBackoffRestart,
    FailureRateRestart,
    FixedDelayRestart,
    NoRestart,
    RestartStrategy,
)
from headwater.core._connectors import ConnectorSpec, InstalledConnector, installed_connectors
from headwater.core._datastream import (
    BroadcastConnectedStream,
    DataStream,
    DataStreamSink,
    KeyedStream,
    WindowedStream,
)
from headwater.core._dead_letters import emit_dead_letter
from headwater.core._environment import ExecutionConfig, StreamEnvironment
from headwater.core._errors import (
    CheckpointError,
    ConfigurationError,
    ConnectorError,
    FatalError,
    HeadwaterError,
    JobCancelledError,
    JobFailedError,
    JobInterruptedError,
    RetryableError,
    SerializationError,
    TaskFailedError,
)
from headwater.core._functions import (
    BroadcastContext,
    BroadcastProcessFunction,
    KeyedContext,
    KeyedProcessFunction,
    KeyedRuntimeContext,
    ListState,
    OutputTag,
    ProcessFunction,
    ReadOnlyBroadcastContext,
    RuntimeContext,
    TimerService,
)
from headwater.core._metrics import Counter, Gauge, Histogram, Meter, MetricGroup
from headwater.core._pipeline import Pipeline, PipelineEndpoint, load_pipeline
from headwater.core._pipeline_bindings import (
    PipelineBinding,
    PipelineSetting,
    choice_setting,
    function_setting,
    value_setting,
)
from headwater.core._reporters import LoggingReporter, MetricReporter, PrometheusReporter
from headwater.core._runtime._executor import JobClient, JobResult, JobStatus
from headwater.core._serialization import JsonSerializer, VersionedSerializer
from headwater.core._sink import (
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    DeliveryGuarantee,
    Sink,
    SinkWriter,
    TwoPhaseCommittingSink,
    WriterInitContext,
)
from headwater.core._source import (
    Boundedness,
    InputStatus,
    ReaderOutput,
    Source,
    SourceReader,
    SourceReaderContext,
    SourceSplit,
    SplitEnumerator,
    SplitEnumeratorContext,
)
from headwater.core._state import (
    AggregateFunction,
    AggregatingState,
    AggregatingStateDescriptor,
    KeyedListState,
    ListStateDescriptor,
    MapState,
    MapStateDescriptor,
    ReducingState,
    ReducingStateDescriptor,
    StateBackend,
    StateTtlConfig,
    ValueState,
    ValueStateDescriptor,
)
from headwater.core._state_codec import (
    SchemaEvolutionError,
    StateCodecSerializer,
    StateValueError,
    register_state_serializer,
)
from headwater.core._watermarks import WatermarkGenerator, WatermarkStrategy
from headwater.core._windows import (
    ContinuousEventTimeTrigger,
    ContinuousProcessingTimeTrigger,
    CountTrigger,
    EventTimeSessionWindows,
    EventTimeTrigger,
    ProcessingTimeSessionWindows,
    ProcessingTimeTrigger,
    ProcessWindowFunction,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TimeWindow,
    Trigger,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WindowAssigner,
    WindowResult,
)
from headwater.core.version import __version__

__all__ = [
    "AggregateFunction",
    "AggregatingState",
    "AggregatingStateDescriptor",
    "AsyncDataStream",
    "AsyncRetryStrategy",
    "Boundedness",
    "BroadcastConnectedStream",
    "BroadcastContext",
    "BroadcastProcessFunction",
    "CheckpointConfig",
    "CheckpointError",
    "CollectSink",
    "CollectionSource",
    "CommitRequest",
    "Committer",
    "CommittingSinkWriter",
    "ConfigurationError",
    "ConnectorError",
    "ConnectorSpec",
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountTrigger",
    "Counter",
    "DataGenSource",
    "DataStream",
    "DataStreamSink",
    "DeliveryGuarantee",
    "DiscardingSink",
    "EventTimeSessionWindows",
    "EventTimeTrigger",
    "ExecutionConfig",
    "ExponentialBackoffRestart",
    "FailureRateRestart",
    "FatalError",
    "FixedDelayRestart",
    "Gauge",
    "HeadwaterError",
    "Histogram",
    "InputStatus",
    "InstalledConnector",
    "IterableSource",
    "JobCancelledError",
    "JobClient",
    "JobFailedError",
    "JobInterruptedError",
    "JobResult",
    "JobStatus",
    "JsonSerializer",
    "KeyedContext",
    "KeyedListState",
    "KeyedProcessFunction",
    "KeyedRuntimeContext",
    "KeyedStream",
    "ListState",
    "ListStateDescriptor",
    "LoggingReporter",
    "MapState",
    "MapStateDescriptor",
    "Meter",
    "MetricGroup",
    "MetricReporter",
    "NoRestart",
    "NumberSequenceSource",
    "OutputTag",
    "Pipeline",
    "PipelineBinding",
    "PipelineEndpoint",
    "PipelineSetting",
    "PrintSink",
    "ProcessFunction",
    "ProcessWindowFunction",
    "ProcessingTimeSessionWindows",
    "ProcessingTimeTrigger",
    "PrometheusReporter",
    "RangeSplit",
    "ReadOnlyBroadcastContext",
    "ReaderOutput",
    "ReducingState",
    "ReducingStateDescriptor",
    "RestartStrategy",
    "RetryableError",
    "RowKind",
    "RuntimeContext",
    "SchemaEvolutionError",
    "SerializationError",
    "Sink",
    "SinkWriter",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "Source",
    "SourceReader",
    "SourceReaderContext",
    "SourceSplit",
    "SplitEnumerator",
    "SplitEnumeratorContext",
    "StateBackend",
    "StateCodecSerializer",
    "StateTtlConfig",
    "StateValueError",
    "StreamEnvironment",
    "TaskFailedError",
    "TimeWindow",
    "TimerService",
    "Trigger",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "TwoPhaseCommittingSink",
    "ValueState",
    "ValueStateDescriptor",
    "VersionedSerializer",
    "WatermarkGenerator",
    "WatermarkStrategy",
    "WindowAssigner",
    "WindowResult",
    "WindowedStream",
    "WriterInitContext",
    "__version__",
    "choice_setting",
    "emit_dead_letter",
    "function_setting",
    "installed_connectors",
    "load_pipeline",
    "register_state_serializer",
    "value_setting",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and _obj.__module__.startswith("headwater.core._"):
        _obj.__module__ = "headwater.core"
del _name, _obj
