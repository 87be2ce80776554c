"""Options validation, secret masking, assignment and registration (no broker needed)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from headwater.connectors.kafka import (
    CONNECTOR,
    AtTimestamp,
    Committed,
    KafkaPartitionSplit,
    KafkaRecordSerializer,
    KafkaSink,
    KafkaSinkOptions,
    KafkaSource,
    KafkaSourceOptions,
)
from headwater.connectors.kafka._enumerator import owner_of
from headwater.connectors.kafka._split import SPLIT_SERIALIZER
from headwater.core import (
    CheckpointConfig,
    ConfigurationError,
    DeliveryGuarantee,
    StreamEnvironment,
    installed_connectors,
)

SERVERS = "127.0.0.1:9092"


def test_registered_for_the_installed_core() -> None:
    connector = next(c for c in installed_connectors() if c.identifier == "kafka")
    assert connector.spec is CONNECTOR
    assert connector.compatible, connector.requirement


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"bootstrap_servers": "nope", "topics": ["t"]}, "bootstrap_servers"),
        ({"bootstrap_servers": SERVERS}, "topics"),
        ({"bootstrap_servers": SERVERS, "topics": ["t"], "topic_pattern": "t.*"}, "topic_pattern"),
        ({"bootstrap_servers": SERVERS, "topic_pattern": "("}, "topic_pattern"),
        (
            {"bootstrap_servers": SERVERS, "topics": ["t"], "starting_offsets": Committed()},
            "group_id",
        ),
        ({"bootstrap_servers": SERVERS, "topics": ["t"], "colour": 1}, "colour"),
        (
            {
                "bootstrap_servers": SERVERS,
                "topics": ["t"],
                "properties": {"enable_auto_commit": True},
            },
            "enable_auto_commit",
        ),
        (
            {"bootstrap_servers": SERVERS, "topics": ["t"], "fetch_timeout": timedelta(0)},
            "fetch_timeout",
        ),
    ],
)
def test_source_options_name_the_option_at_fault(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=f"kafka source: .*{named}"):
        KafkaSourceOptions(**options)  # type: ignore[arg-type]


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"timestamp.*timezone-aware"):
        AtTimestamp(timestamp=datetime(2024, 1, 1))  # noqa: DTZ001


def test_exactly_once_needs_a_prefix() -> None:
    with pytest.raises(ConfigurationError, match=r"kafka sink: .*transactional_id_prefix"):
        KafkaSinkOptions(
            bootstrap_servers=SERVERS, delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE
        )


def test_transaction_timeout_must_cover_the_checkpoints() -> None:
    sink = KafkaSink(
        KafkaSinkOptions(
            bootstrap_servers=SERVERS,
            delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
            transactional_id_prefix="job",
            transaction_timeout=timedelta(minutes=1),
        ),
        KafkaRecordSerializer(topic="out"),
    )
    sink.check_checkpointing(
        CheckpointConfig(interval=timedelta(seconds=1), timeout=timedelta(seconds=30))
    )
    with pytest.raises(ConfigurationError, match=r"transaction_timeout.*0:01:00.*0:10:01"):
        sink.check_checkpointing(CheckpointConfig(interval=timedelta(seconds=1)))


def test_environment_build_checks_the_transaction_timeout() -> None:
    """Core calls ``Sink.check_checkpointing`` when the job is built."""
    sink: KafkaSink[bytes] = KafkaSink(
        KafkaSinkOptions(
            bootstrap_servers=SERVERS,
            delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
            transactional_id_prefix="job",
            transaction_timeout=timedelta(minutes=1),
        ),
        KafkaRecordSerializer(topic="out"),
    )
    env = StreamEnvironment(checkpointing=CheckpointConfig(interval=timedelta(seconds=1)))
    env.from_collection([b"x"]).sink_to(sink)
    with pytest.raises(ConfigurationError, match=r"transaction_timeout.*0:01:00.*0:10:01"):
        env.build("too short a transaction timeout")
    env = StreamEnvironment(
        checkpointing=CheckpointConfig(interval=timedelta(seconds=1), timeout=timedelta(seconds=30))
    )
    env.from_collection([b"x"]).sink_to(sink)
    env.build("fits")


def test_secrets_are_masked() -> None:
    options = KafkaSourceOptions(
        bootstrap_servers=SERVERS,
        topics=["t"],
        properties={
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "u",
            "sasl_plain_password": "hunter2",
        },
    )
    for text in (repr(options), str(options), repr(KafkaSource(options))):
        assert "hunter2" not in text
        assert "sasl_plain_username" in text
    with pytest.raises(ConfigurationError) as info:
        KafkaSourceOptions(
            bootstrap_servers=SERVERS,
            topics=["t"],
            properties={"sasl_plain_password": "hunter2"},
            colour=1,
        )  # type: ignore[call-arg]
    assert "hunter2" not in str(info.value)


def test_assignment_is_even_and_deterministic() -> None:
    owners = Counter(owner_of(f"topic{t}", p, 4) for t in range(5) for p in range(8))
    assert set(owners.values()) == {10}
    assert owner_of("orders", 3, 4) == owner_of("orders", 3, 4)
    # consecutive partitions of one topic go to consecutive readers
    assert [owner_of("orders", p, 3) for p in range(3)] in (
        [0, 1, 2], [1, 2, 0], [2, 0, 1],
    )  # fmt: skip


def test_split_state_round_trips() -> None:
    split = KafkaPartitionSplit("t", 3, 42, 100)
    data = SPLIT_SERIALIZER.serialize(split)
    assert SPLIT_SERIALIZER.deserialize(1, data) == split
    assert split.split_id == "t-3"
