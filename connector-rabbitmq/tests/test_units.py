"""Unit tests of pure logic: the acknowledgement ledger, publisher-confirm matching, options."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

import pytest
from headwater.connectors.rabbitmq import (
    RabbitMQConnectionOptions,
    RabbitMQQueueSplit,
    RabbitMQSinkOptions,
    RabbitMQSource,
    RabbitMQSourceOptions,
)
from headwater.connectors.rabbitmq._reader import AckLedger
from headwater.connectors.rabbitmq._sink import _Confirms
from headwater.connectors.rabbitmq._split import SPLIT_SERIALIZER
from headwater.core import (
    CheckpointConfig,
    ConfigurationError,
    DeliveryGuarantee,
    StreamEnvironment,
)
from pika.spec import Basic


def test_ledger_acknowledges_only_sealed_chunks_and_forgets_their_ids() -> None:
    ledger = AckLedger(RabbitMQQueueSplit("q"), retention=60.0)
    first = ledger.current(epoch=1)
    first.ids += ["a", "b"]
    first.last_tag = 2
    ledger.known.update(a=first.number, b=first.number)
    ledger.seal(7)
    second = ledger.current(epoch=1)
    assert second is not first  # sealed chunks take no more deliveries
    second.ids.append("c")
    ledger.known["c"] = second.number
    assert ledger.completed(6) == []
    done = ledger.completed(7)
    assert done == [first]
    ledger.acknowledged(first)
    assert set(ledger.known) == {"c"}
    assert ledger.snapshot().unacked_ids == ("c",)


def test_ledger_keeps_ids_of_lost_acks_as_orphans_until_they_expire() -> None:
    restored = RabbitMQQueueSplit("q", 0, ("x", "y"))
    ledger = AckLedger(restored, retention=0.0)
    assert set(ledger.known) == {"x", "y"}
    ledger.known["x"] = ledger.current(epoch=1).number  # redelivered: now held by a chunk
    ledger.expire()
    assert set(ledger.known) == {"x"}, "an orphan seen again must outlive its expiry"


def test_a_new_connection_opens_a_new_chunk() -> None:
    ledger = AckLedger(RabbitMQQueueSplit("q"), retention=60.0)
    assert ledger.current(epoch=1) is ledger.current(epoch=1)
    assert ledger.current(epoch=2).epoch == 2


def test_split_serializer_round_trips_ids() -> None:
    split = RabbitMQQueueSplit("orders", 3, ("m1", "m2"))
    assert SPLIT_SERIALIZER.deserialize(1, SPLIT_SERIALIZER.serialize(split)) == split


def _frame(kind: type, tag: int, multiple: bool) -> SimpleNamespace:
    return SimpleNamespace(method=kind(delivery_tag=tag, multiple=multiple))


async def test_confirms_settle_batches_with_multiple_acks_and_report_nacks() -> None:
    confirms = _Confirms()
    one, two = confirms.add(3), confirms.add(2)  # tags 1-3 and 4-5
    confirms.on_confirm(_frame(Basic.Ack, 2, True))
    assert not one.done.done()
    confirms.on_confirm(_frame(Basic.Nack, 3, False))
    assert await one.done == [2]  # the third message of the batch was nacked
    confirms.on_confirm(_frame(Basic.Ack, 5, False))
    assert not two.done.done()
    confirms.on_confirm(_frame(Basic.Ack, 5, True))
    assert await two.done == []


async def test_confirms_fail_waiting_batches_when_the_channel_closes() -> None:
    confirms = _Confirms()
    batch = confirms.add(1)
    confirms.fail(ConnectionError("gone"))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(batch.done, 1)


def test_exactly_once_refuses_several_consumers_per_queue() -> None:
    with pytest.raises(ConfigurationError, match="consumers_per_queue"):
        RabbitMQSourceOptions(
            queues=("q",), consumers_per_queue=2, delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE
        )


def test_bindings_need_declare() -> None:
    with pytest.raises(ConfigurationError, match="declare"):
        RabbitMQSourceOptions(queues=("q",), bindings=[{"exchange": "e"}])


def test_sink_refuses_exactly_once_and_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="message id"):
        RabbitMQSinkOptions(delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE)


@pytest.mark.parametrize(
    "guarantee", [DeliveryGuarantee.EXACTLY_ONCE, DeliveryGuarantee.AT_LEAST_ONCE]
)
def test_unbounded_source_refuses_a_job_without_checkpoints(guarantee: DeliveryGuarantee) -> None:
    source = RabbitMQSource(RabbitMQSourceOptions(queues=("q",), delivery_guarantee=guarantee))
    env = StreamEnvironment()
    env.from_source(source).print()
    with pytest.raises(
        ConfigurationError, match=f"{guarantee.name}.*checkpointing=CheckpointConfig"
    ):
        env.build("no checkpoints")
    env = StreamEnvironment(checkpointing=CheckpointConfig(interval=timedelta(seconds=1)))
    env.from_source(source).print()
    env.build("with checkpoints")


def test_password_stays_out_of_reprs_and_addresses() -> None:
    options = RabbitMQConnectionOptions.from_url("amqp://alice:s3cret-pw@broker:5673/prod")
    assert options.virtual_host == "prod" and options.port == 5673
    assert "s3cret-pw" not in repr(options)
    assert "s3cret-pw" not in options.where
    assert "s3cret-pw" not in repr(RabbitMQSourceOptions(connection=options, queues=("q",)))
