"""headwater-connector-base: what connectors share.

- Reader base: :class:`SourceReaderBase`, :class:`SplitReader` / :class:`BlockingSplitReader`,
  :class:`SplitFetcherManager`, :class:`RecordEmitter`, and :class:`DecodingRecordEmitter` (format,
  record deserializer or raw bytes; error policy; timestamps; position after the record).
- Enumerator bases: :class:`PushSplitEnumerator` (discovery, pending splits per owner) and
  :class:`QueueSplitEnumerator` (planned splits handed out on request, :class:`HandOut`).
- Versioned split/state serializers: :func:`dataclass_serializer`.
- Async sink base: :class:`AsyncSinkBase`, :class:`AsyncSinkWriter`, :class:`AsyncSinkOptions`,
  rate limiting (:class:`AIMDRateLimitingStrategy`); :class:`BlockingClientSinkWriter` for a
  blocking client (lazy client, calls on the thread pool, per-entry outcomes).
- Options: :class:`OptionsModel` (every connector's options), secret masking
  (:class:`SecretMasker`, :func:`mask_url`, :func:`mask_settings`).
- :class:`HybridSource`: bounded sources, then a last (possibly unbounded) one.
- Formats: :class:`RawFormat`, :class:`TextFormat`, :class:`JsonFormat`, :class:`CsvFormat`,
  :class:`AvroFormat` (extra ``avro``), with error policies and :class:`DeadLetter`;
  :meth:`Format.deserializer` binds one to a reader's metric group.
- Retries: :class:`RetryPolicy`, :class:`Backoff`, :func:`retry`, :func:`retry_blocking`,
  :class:`ErrorClass`.
"""

from headwater.connectors.base._async_sink import (
    AsyncSinkBase,
    AsyncSinkOptions,
    AsyncSinkWriter,
    RecordTooLargeError,
    RequestTimeoutError,
    SubmitResult,
)
from headwater.connectors.base._blocking_sink import BlockingClientSinkWriter
from headwater.connectors.base._emitter import DecodingRecordEmitter
from headwater.connectors.base._enumerators import (
    HandOut,
    PushSplitEnumerator,
    QueueSplitEnumerator,
)
from headwater.connectors.base._formats import (
    AvroFormat,
    CsvFormat,
    DeadLetter,
    DeadLetterOnError,
    Deserializer,
    ErrorPolicy,
    FailOnError,
    Format,
    JsonFormat,
    RawFormat,
    SkipOnError,
    TextFormat,
    format_from_setting,
    format_setting,
    pipeline_format,
    refuse_record,
)
from headwater.connectors.base._hybrid import HybridSource, HybridSplit, SourceSwitch
from headwater.connectors.base._options import OptionsModel
from headwater.connectors.base._rate_limiting import (
    AIMDRateLimitingStrategy,
    RateLimitingStrategy,
    RequestInfo,
    RequestResultInfo,
)
from headwater.connectors.base._reader import (
    BlockingSplitReader,
    FetcherMode,
    RecordEmitter,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
    SplitReader,
)
from headwater.connectors.base._retry import (
    Backoff,
    ErrorClass,
    OnRetry,
    RetryPolicy,
    classify_error,
    retry,
    retry_blocking,
)
from headwater.connectors.base._secrets import (
    MASK,
    SecretMasker,
    mask_settings,
    mask_url,
    secret_values,
)
from headwater.connectors.base._serializers import DataclassSerializer, dataclass_serializer
from headwater.connectors.base.version import __version__

__all__ = [
    "MASK",
    "AIMDRateLimitingStrategy",
    "AsyncSinkBase",
    "AsyncSinkOptions",
    "AsyncSinkWriter",
    "AvroFormat",
    "Backoff",
    "BlockingClientSinkWriter",
    "BlockingSplitReader",
    "CsvFormat",
    "DataclassSerializer",
    "DeadLetter",
    "DeadLetterOnError",
    "DecodingRecordEmitter",
    "Deserializer",
    "ErrorClass",
    "ErrorPolicy",
    "FailOnError",
    "FetcherMode",
    "Format",
    "HandOut",
    "HybridSource",
    "HybridSplit",
    "JsonFormat",
    "OnRetry",
    "OptionsModel",
    "PushSplitEnumerator",
    "QueueSplitEnumerator",
    "RateLimitingStrategy",
    "RawFormat",
    "RecordEmitter",
    "RecordTooLargeError",
    "RecordsBySplit",
    "RequestInfo",
    "RequestResultInfo",
    "RequestTimeoutError",
    "RetryPolicy",
    "SecretMasker",
    "SkipOnError",
    "SourceReaderBase",
    "SourceSwitch",
    "SplitFetcherManager",
    "SplitReader",
    "SubmitResult",
    "TextFormat",
    "__version__",
    "classify_error",
    "dataclass_serializer",
    "format_from_setting",
    "format_setting",
    "mask_settings",
    "mask_url",
    "pipeline_format",
    "refuse_record",
    "retry",
    "retry_blocking",
    "secret_values",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and _obj.__module__.startswith("headwater.connectors.base._"):
        _obj.__module__ = "headwater.connectors.base"
del _name, _obj
