"""The RabbitMQ connector for headwater: a queue source (exactly-once by message id) and a confirmed sink.

Built on pika's asyncio connection adapter (AMQP 0-9-1), on the job's event loop.

- :class:`RabbitMQSource`: one split per consumer of a queue; manual acknowledgements sent when
  the checkpoint covering the messages completes; ``EXACTLY_ONCE`` drops redeliveries by id.
- :class:`RabbitMQSink`: publishes to an exchange with publisher confirms (``AT_LEAST_ONCE``) or
  without (``NONE``); ``mandatory`` returns fail the job.

Install with ``pip install headwater-connector-rabbitmq``. Example::

    from datetime import timedelta
    from headwater.core import CheckpointConfig, DeliveryGuarantee, StreamEnvironment
    from headwater.connectors.rabbitmq import (
        RabbitMQSink, RabbitMQSinkOptions, RabbitMQSource, RabbitMQSourceOptions,
    )

    env = StreamEnvironment(checkpointing=CheckpointConfig(interval=timedelta(seconds=1)))
    source = RabbitMQSource(RabbitMQSourceOptions(
        queues=("in",), delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE))
    sink = RabbitMQSink(RabbitMQSinkOptions(routing_key="out"))
    env.from_source(source).map(bytes.upper).sink_to(sink)
    env.execute("upper")

Registered as ``rabbitmq`` in the ``headwater.connectors`` entry-point group.
"""

from headwater.connectors.rabbitmq._client import ConnectionLostError, ResourceNotFoundError
from headwater.connectors.rabbitmq._options import (
    QueueBinding,
    RabbitMQConnectionOptions,
    RabbitMQSinkOptions,
    RabbitMQSourceOptions,
    RabbitMQWriterOptions,
)
from headwater.connectors.rabbitmq._pipeline import pipeline_sink, pipeline_source
from headwater.connectors.rabbitmq._reader import AckLedger, RabbitMQSourceReader
from headwater.connectors.rabbitmq._records import OutgoingMessage, RabbitMQMessage
from headwater.connectors.rabbitmq._sink import RabbitMQSink, UnroutableMessageError
from headwater.connectors.rabbitmq._source import RabbitMQSource
from headwater.connectors.rabbitmq._split import EnumeratorState, RabbitMQQueueSplit
from headwater.connectors.rabbitmq.version import __version__
from headwater.core import ConnectorSpec

__all__ = [
    "CONNECTOR",
    "AckLedger",
    "ConnectionLostError",
    "EnumeratorState",
    "OutgoingMessage",
    "QueueBinding",
    "RabbitMQConnectionOptions",
    "RabbitMQMessage",
    "RabbitMQQueueSplit",
    "RabbitMQSink",
    "RabbitMQSinkOptions",
    "RabbitMQSource",
    "RabbitMQSourceOptions",
    "RabbitMQSourceReader",
    "RabbitMQWriterOptions",
    "ResourceNotFoundError",
    "UnroutableMessageError",
    "__version__",
]

CONNECTOR = ConnectorSpec(
    identifier="rabbitmq",
    summary="RabbitMQ queues: source with acks on checkpoint (exactly-once by id), confirmed sink.",
    source=RabbitMQSource,
    sink=RabbitMQSink,
    options={"source": RabbitMQSourceOptions, "sink": RabbitMQSinkOptions},
    distribution="headwater-connector-rabbitmq",
    pipeline_source=pipeline_source,
    pipeline_sink=pipeline_sink,
)
"""The entry point of the ``rabbitmq`` connector (group ``headwater.connectors``)."""

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("headwater.connectors.rabbitmq._"):
        _obj.__module__ = "headwater.connectors.rabbitmq"
del _name, _obj
