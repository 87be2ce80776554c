"""Checkpoint formats of the Kafka source's splits and enumerator state."""

from __future__ import annotations

import json

import pytest
from headwater.connectors.kafka import _split
from headwater.connectors.kafka._split import (
    ENUMERATOR_STATE_SERIALIZER,
    EnumeratorState,
    KafkaPartitionSplit,
)
from headwater.core import JsonSerializer

STATE = EnumeratorState(
    assigned=frozenset({("orders", 0), ("orders", 1)}),
    initial_discovery_done=True,
    pending=(KafkaPartitionSplit("orders", 2, 17), KafkaPartitionSplit("orders", 3, 0, 40)),
)


def test_enumerator_state_round_trip() -> None:
    data = ENUMERATOR_STATE_SERIALIZER.serialize(STATE)
    assert (
        ENUMERATOR_STATE_SERIALIZER.deserialize(ENUMERATOR_STATE_SERIALIZER.version, data) == STATE
    )


def test_enumerator_state_format_1_is_read() -> None:
    format_1 = json.dumps(
        {
            "assigned": [["orders", 0], ["orders", 1]],
            "initial_discovery_done": True,
            "pending": ['["orders",2,17,-1]', '["orders",3,0,40]'],
        }
    ).encode()
    assert ENUMERATOR_STATE_SERIALIZER.deserialize(1, format_1) == STATE


def test_pending_splits_are_read_in_the_split_format_they_were_written_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A later split format must not be read as format 1 (nor format 1 as a later one)."""
    seen: list[int] = []

    def split_from_json(version: int, d: dict[str, int]) -> KafkaPartitionSplit:
        seen.append(version)
        return KafkaPartitionSplit("orders", d["p"], d["start"])

    split_format_2 = JsonSerializer(
        version=2,
        to_json=lambda s: {"p": s.partition, "start": s.starting_offset},
        from_json=split_from_json,
    )
    monkeypatch.setattr(_split, "SPLIT_SERIALIZER", split_format_2)
    state = EnumeratorState(frozenset(), False, (KafkaPartitionSplit("orders", 5, 9),))
    data = ENUMERATOR_STATE_SERIALIZER.serialize(state)
    assert (
        ENUMERATOR_STATE_SERIALIZER.deserialize(ENUMERATOR_STATE_SERIALIZER.version, data) == state
    )
    assert seen == [2]
