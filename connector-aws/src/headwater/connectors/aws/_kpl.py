"""De-aggregation of records written by the Kinesis Producer Library (KPL) with aggregation on.

An aggregated record's payload is the 4 magic bytes ``F3 89 9A C2``, a protobuf
``AggregatedRecord`` (tables of partition and explicit hash keys, and the user records that index
them) and the MD5 digest of the protobuf bytes. As the KCL does, a payload with the magic bytes but
a wrong digest is taken for a plain record that happens to start with them; one with a right
digest that does not parse is corrupt and refused, naming the shard and sequence number.

The schema is KPL's ``messages.proto`` (``Record`` tags, field 4, are left unparsed), built here
as a descriptor so no generated code or protoc is needed, in a private descriptor pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from headwater.connectors.aws._reader import Record
from headwater.core import SerializationError

__all__ = ["MAGIC", "deaggregate", "is_aggregated"]

MAGIC = b"\xf3\x89\x9a\xc2"
"""The first bytes of every KPL-aggregated payload."""

_DIGEST_SIZE = 16


def _aggregated_record_class() -> Any:
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="headwater/kpl_aggregation.proto", package="headwater.kpl", syntax="proto2"
    )
    record = proto.message_type.add(name="Record")
    record.field.add(
        name="partition_key_index", number=1, type=field.TYPE_UINT64, label=field.LABEL_REQUIRED
    )
    record.field.add(
        name="explicit_hash_key_index",
        number=2,
        type=field.TYPE_UINT64,
        label=field.LABEL_OPTIONAL,
    )
    record.field.add(name="data", number=3, type=field.TYPE_BYTES, label=field.LABEL_REQUIRED)
    aggregated = proto.message_type.add(name="AggregatedRecord")
    aggregated.field.add(
        name="partition_key_table", number=1, type=field.TYPE_STRING, label=field.LABEL_REPEATED
    )
    aggregated.field.add(
        name="explicit_hash_key_table",
        number=2,
        type=field.TYPE_STRING,
        label=field.LABEL_REPEATED,
    )
    aggregated.field.add(
        name="records",
        number=3,
        type=field.TYPE_MESSAGE,
        type_name=".headwater.kpl.Record",
        label=field.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("headwater.kpl.AggregatedRecord")
    )


_AggregatedRecord = _aggregated_record_class()


def is_aggregated(data: bytes) -> bool:
    """Whether ``data`` is a KPL-aggregated payload (magic bytes and a matching MD5 digest)."""
    if len(data) <= len(MAGIC) + _DIGEST_SIZE or not data.startswith(MAGIC):
        return False
    body = memoryview(data)[len(MAGIC) : -_DIGEST_SIZE]
    return hashlib.md5(body, usedforsecurity=False).digest() == data[-_DIGEST_SIZE:]


def deaggregate(records: Sequence[Record], shard_id: str) -> list[Record]:
    """``records`` with every aggregated one replaced by its user records, in order.

    A user record is a copy of its Kinesis record's fields (sequence number, arrival time) with
    its own ``Data``, ``PartitionKey``, ``ExplicitHashKey`` (when set) and ``SubSequenceNumber``
    (its index in the aggregate). Plain records are passed through unchanged.
    """
    out: list[Record] = []
    for record in records:
        data = record["Data"]
        if not is_aggregated(data):
            out.append(record)
            continue
        aggregate = _AggregatedRecord()
        try:
            aggregate.ParseFromString(data[len(MAGIC) : -_DIGEST_SIZE])
            keys = aggregate.partition_key_table
            hash_keys = aggregate.explicit_hash_key_table
            for index, user in enumerate(aggregate.records):
                expanded = dict(record)
                expanded["Data"] = user.data
                expanded["PartitionKey"] = keys[user.partition_key_index]
                if user.HasField("explicit_hash_key_index"):
                    expanded["ExplicitHashKey"] = hash_keys[user.explicit_hash_key_index]
                expanded["SubSequenceNumber"] = index
                out.append(expanded)
        except (DecodeError, IndexError) as exc:
            raise SerializationError(
                f"kinesis source: the KPL-aggregated record {record['SequenceNumber']} of shard "
                f"{shard_id} is corrupt (its digest matches but its content does not parse: "
                f"{type(exc).__name__}: {exc})"
            ) from exc
    return out
