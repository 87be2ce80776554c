"""The RabbitMQ source and sink against the real broker: records, declarations, bad input, outages."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pika
import pytest
from headwater.connectors.base import DeadLetter, DeadLetterOnError, JsonFormat, RetryPolicy
from headwater.connectors.rabbitmq import (
    OutgoingMessage,
    QueueBinding,
    RabbitMQConnectionOptions,
    RabbitMQMessage,
    RabbitMQSink,
    RabbitMQSinkOptions,
    RabbitMQSource,
    RabbitMQSourceOptions,
    RabbitMQWriterOptions,
)
from headwater.core import (
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    DeliveryGuarantee,
    StreamEnvironment,
    WatermarkStrategy,
)

from .rabbitmq_helpers import channel, declare, drain, publish, ready_count


def connection(url: str, **options: Any) -> RabbitMQConnectionOptions:
    return RabbitMQConnectionOptions.from_url(url, **options)


def error_chain(error: BaseException) -> str:
    """The messages of an error and its causes."""
    texts = []
    current: BaseException | None = error
    while current is not None and len(texts) < 10:
        texts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


def test_typed_messages_carry_properties_headers_and_event_time(
    rabbitmq_url: str, queues: list[str]
) -> None:
    queue = queues[0]
    declare(rabbitmq_url, queue)
    with channel(rabbitmq_url) as ch:
        for i in range(5):
            properties = pika.BasicProperties(
                message_id=f"id{i}", correlation_id=f"c{i}", content_type="text/plain",
                headers={"event_ms": 1_700_000_000_000 + i, "tag": "t"},
            )  # fmt: skip
            ch.basic_publish("", queue, b"body%d" % i, properties)
    source = RabbitMQSource(
        RabbitMQSourceOptions(
            connection=connection(rabbitmq_url),
            queues=(queue,),
            bounded=True,
            delivery_guarantee=DeliveryGuarantee.NONE,
            timestamp_header="event_ms",
        ),
        message_deserializer=lambda m: m,
    )
    env = StreamEnvironment()
    # each record is paired with the event time the source gave it
    stamped = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda m, ts: ts
    )
    got: list[RabbitMQMessage] = env.from_source(source, stamped).execute_and_collect()
    assert [m.body for m in got] == [b"body%d" % i for i in range(5)]
    assert [(m.message_id, m.correlation_id, m.content_type) for m in got] == [
        (f"id{i}", f"c{i}", "text/plain") for i in range(5)
    ]
    assert got[2].headers == {"event_ms": 1_700_000_000_002, "tag": "t"}
    assert {m.queue for m in got} == {queue} and not any(m.redelivered for m in got)


def test_event_time_from_the_header_reaches_windows(rabbitmq_url: str, queues: list[str]) -> None:
    queue = queues[0]
    declare(rabbitmq_url, queue)
    with channel(rabbitmq_url) as ch:
        for i in range(6):
            ch.basic_publish("", queue, b"x", pika.BasicProperties(headers={"ts": 1000 * i}))
    source = RabbitMQSource(
        RabbitMQSourceOptions(
            connection=connection(rabbitmq_url),
            queues=(queue,),
            bounded=True,
            delivery_guarantee=DeliveryGuarantee.NONE,
            timestamp_header="ts",
        )
    )
    env = StreamEnvironment()
    stamps: list[int] = []
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda _m, ts: stamps.append(ts) or ts
    )
    env.from_source(source, strategy).execute_and_collect()
    assert stamps == [1000 * i for i in range(6)]


def test_declare_creates_queue_exchange_and_binding(rabbitmq_url: str, queues: list[str]) -> None:
    queue, exchange = queues[0], f"{queues[0]}_x"
    options = RabbitMQSourceOptions(
        connection=connection(rabbitmq_url), queues=(queue,), bounded=True, declare=True,
        delivery_guarantee=DeliveryGuarantee.NONE,
        bindings=[QueueBinding(exchange=exchange, exchange_type="topic", routing_key="orders.*")],
    )  # fmt: skip
    env = StreamEnvironment()
    env.from_source(RabbitMQSource(options)).execute_and_collect()  # declares, finds nothing
    try:
        with channel(rabbitmq_url) as ch:
            ch.basic_publish(exchange, "orders.created", b"routed")
            ch.basic_publish(exchange, "payments.done", b"not routed")
        got = StreamEnvironment().from_source(RabbitMQSource(options)).execute_and_collect()
        assert got == [b"routed"]
    finally:
        with channel(rabbitmq_url) as ch:
            ch.exchange_delete(exchange)


def test_missing_queue_without_declare_fails_naming_it(
    rabbitmq_url: str, queues: list[str]
) -> None:
    options = RabbitMQSourceOptions(
        connection=connection(rabbitmq_url), queues=(queues[0],), bounded=True,
        delivery_guarantee=DeliveryGuarantee.NONE,
    )  # fmt: skip
    with pytest.raises(Exception) as info:
        StreamEnvironment().from_source(RabbitMQSource(options)).execute_and_collect()
    assert f"queue {queues[0]!r} does not exist" in error_chain(info.value)
    assert "declare=False" in error_chain(info.value)


def test_wrong_credentials_fail_without_printing_the_password(
    rabbitmq_url: str, queues: list[str]
) -> None:
    declare(rabbitmq_url, queues[0])
    bad = RabbitMQConnectionOptions.from_url(
        rabbitmq_url.replace("guest:guest", "guest:Wr0ng-S3cret")
    )
    options = RabbitMQSourceOptions(
        connection=bad, queues=(queues[0],), bounded=True, delivery_guarantee=DeliveryGuarantee.NONE
    )
    with pytest.raises(Exception) as info:
        StreamEnvironment().from_source(RabbitMQSource(options)).execute_and_collect()
    chain = error_chain(info.value)
    assert "login refused" in chain and "guest@" in chain
    assert "Wr0ng-S3cret" not in chain


def test_several_consumers_per_queue_read_everything_at_least_once(
    rabbitmq_url: str, queues: list[str]
) -> None:
    queue = queues[0]
    declare(rabbitmq_url, queue)
    publish(rabbitmq_url, queue, [b"%d" % i for i in range(3000)])
    options = RabbitMQSourceOptions(
        connection=connection(rabbitmq_url), queues=(queue,), consumers_per_queue=3,
        bounded=True, max_messages_per_fetch=50,
    )  # fmt: skip
    env = StreamEnvironment(
        parallelism=3, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
    )
    sink: CollectSink[int] = CollectSink()
    env.from_source(RabbitMQSource(options, value_format=JsonFormat()), name="Source: rmq").sink_to(
        sink
    )
    result = env.execute("three consumers")
    assert sorted(sink.results()) == list(range(3000))
    assert ready_count(rabbitmq_url, queue) == 0
    assert result.metrics["Source: rmq"]["numRecordsIn"] == 3000


def test_a_dead_letter_is_acknowledged_only_after_it_is_written(
    rabbitmq_url: str, queues: list[str]
) -> None:
    queue = queues[0]
    declare(rabbitmq_url, queue)
    publish(rabbitmq_url, queue, [b"1", b"{bad", b"3"], ["a", "b", "c"])
    options = RabbitMQSourceOptions(
        connection=connection(rabbitmq_url), queues=(queue,), bounded=True,
        delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
    )  # fmt: skip

    def failing_collector(letter: DeadLetter) -> None:
        raise OSError("the dead-letter store is down")

    def run(collector: Callable[[DeadLetter], None]) -> list[Any]:
        source = RabbitMQSource(
            options, value_format=JsonFormat(on_error=DeadLetterOnError(collector))
        )
        env = StreamEnvironment(
            checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
        )
        return env.from_source(source).execute_and_collect()

    with pytest.raises(Exception) as info:
        run(failing_collector)
    assert "dead-letter store is down" in error_chain(info.value)
    assert ready_count(rabbitmq_url, queue) == 3, (
        "nothing may be acknowledged before the letter is written"
    )
    letters: list[DeadLetter] = []
    assert sorted(run(letters.append)) == [1, 3]
    assert [letter.payload for letter in letters] == [b"{bad"]
    assert ready_count(rabbitmq_url, queue) == 0


def test_sink_publishes_properties_and_per_record_routing_keys(
    rabbitmq_url: str, queues: list[str]
) -> None:
    even, odd = queues[0], queues[1]
    declare(rabbitmq_url, even, odd)

    def build(n: int) -> OutgoingMessage:
        return OutgoingMessage(
            body=b"%d" % n, routing_key=even if n % 2 == 0 else odd, message_id=f"n{n}",
            correlation_id=f"c{n}", content_type="application/json", headers={"n": n},
        )  # fmt: skip

    sink = RabbitMQSink(
        RabbitMQSinkOptions(connection=connection(rabbitmq_url)), message_builder=build
    )
    env = StreamEnvironment(parallelism=2)
    env.from_collection(list(range(200))).sink_to(sink)
    env.execute("routing")
    with channel(rabbitmq_url) as ch:
        method, properties, body = ch.basic_get(even, auto_ack=True)
        assert method is not None and body == b"0"
        assert (properties.message_id, properties.correlation_id) == ("n0", "c0")
        assert properties.content_type == "application/json" and properties.headers == {"n": 0}
        assert properties.delivery_mode == 2
    assert sorted(int(b) for _, b in drain(rabbitmq_url, even)) == list(range(2, 200, 2))
    assert sorted(int(b) for _, b in drain(rabbitmq_url, odd)) == list(range(1, 200, 2))


def test_unroutable_mandatory_message_fails_naming_the_routing_key(
    rabbitmq_url: str, queues: list[str]
) -> None:
    sink = RabbitMQSink(
        RabbitMQSinkOptions(connection=connection(rabbitmq_url), routing_key=queues[3])
    )
    env = StreamEnvironment()
    env.from_collection([b"lost?"]).sink_to(sink)
    with pytest.raises(Exception) as info:
        env.execute("unroutable")
    assert f"routing key {queues[3]!r}" in error_chain(info.value)
    assert "NO_ROUTE" in error_chain(info.value)


async def _collect_until(
    env: StreamEnvironment,
    sink: CollectSink[Any],
    done: Callable[[list[Any]], bool],
    outage: Callable[[], Any],
) -> None:
    client = await env.execute_async("outage")
    await outage()
    deadline = time.monotonic() + 90
    while not done(sink.results()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await client.cancel()


@pytest.mark.parametrize(
    "guarantee", [DeliveryGuarantee.AT_LEAST_ONCE, DeliveryGuarantee.EXACTLY_ONCE]
)
def test_source_survives_a_ten_second_broker_outage(
    rabbitmq_service: Any,
    rabbitmq_url: str,
    queues: list[str],
    tcp_proxy_factory: Any,
    guarantee: DeliveryGuarantee,
) -> None:
    """The connection is cut for 10 s; the source reconnects and the broker redelivers.

    Messages emitted but not acknowledged when the connection died come again: at-least-once
    emits them twice (which shows the test sees repeats), exactly-once drops them by id.
    """
    queue = queues[0]
    declare(rabbitmq_url, queue)
    count = 3000
    publish(rabbitmq_url, queue, [b"%d" % i for i in range(count)], [f"m{i}" for i in range(count)])
    proxy = tcp_proxy_factory(rabbitmq_service.host, rabbitmq_service.port)
    options = RabbitMQSourceOptions(
        connection=connection(rabbitmq_url, port=proxy.port),
        queues=(queue,), delivery_guarantee=guarantee, prefetch_count=100,
        max_messages_per_fetch=50,
    )  # fmt: skip
    env = StreamEnvironment(checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100)))
    sink: CollectSink[Any] = CollectSink()
    env.from_source(RabbitMQSource(options, message_deserializer=lambda m: m.message_id)).sink_to(
        sink
    )

    async def outage() -> None:
        while len(sink.results()) < count // 4:
            await asyncio.sleep(0.05)
        proxy.refuse()  # open connections are reset, new ones refused
        await asyncio.sleep(10)
        proxy.restore()

    asyncio.run(_collect_until(env, sink, lambda got: len(set(got)) >= count, outage))
    got = Counter(sink.results())
    assert set(got) == {f"m{i}" for i in range(count)}
    repeated = [m for m, n in got.items() if n > 1]
    if guarantee is DeliveryGuarantee.EXACTLY_ONCE:
        assert not repeated, f"{len(repeated)} messages emitted twice across the outage"
    else:
        assert repeated, "no redelivery seen: the outage did not test deduplication"


def test_sink_survives_a_broker_outage_at_least_once(
    rabbitmq_service: Any, rabbitmq_url: str, queues: list[str], tcp_proxy_factory: Any
) -> None:
    queue = queues[0]
    declare(rabbitmq_url, queue)
    proxy = tcp_proxy_factory(rabbitmq_service.host, rabbitmq_service.port)
    patient = RetryPolicy(max_attempts=None, max_elapsed=timedelta(seconds=60))
    options = RabbitMQSinkOptions(
        connection=RabbitMQConnectionOptions.from_url(rabbitmq_url, port=proxy.port),
        routing_key=queue,
        writer=RabbitMQWriterOptions(retry_policy=patient, max_batch_size=50),
    )
    count = 4000
    env = StreamEnvironment(checkpointing=CheckpointConfig(interval=timedelta(milliseconds=200)))
    source = DataGenSource(lambda i, _rng: i, count=count, rows_per_second=1000)
    env.from_source(source).sink_to(RabbitMQSink(options, value_format=JsonFormat()))

    async def run() -> None:
        client = await env.execute_async("sink outage")
        await asyncio.sleep(1.0)
        proxy.refuse()
        await asyncio.sleep(10)
        proxy.restore()
        await client.wait()

    asyncio.run(run())
    got = [int(body) for _, body in drain(rabbitmq_url, queue)]
    assert set(got) == set(range(count)), f"missing: {sorted(set(range(count)) - set(got))[:10]}"
