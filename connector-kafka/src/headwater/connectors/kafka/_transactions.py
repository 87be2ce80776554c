"""Kafka transactions for the exactly-once sink: ids, the in-process registry, and resumed commits.

How a transaction reaches its commit (see the docs page, "Exactly-once"):

- Every transaction has its own transactional id ``{prefix}-{subtask}-{n}`` (``n`` counts up
  forever, in writer state), so a committable ``(transactional id, producer id, epoch)`` names
  exactly one transaction: committing it twice can never commit a later transaction.
- At a checkpoint the writer flushes, hands the committable over and keeps the producer, with its
  transaction open, in :data:`REGISTRY`. The committer commits it through that producer
  (``commit_transaction()``), the normal aiokafka path.
- In a new process the producer is gone. aiokafka cannot resume a transaction of another producer
  instance, so :func:`resume_commit` sends Kafka's ``EndTxn`` request itself with the
  committable's producer id and epoch, as Flink's ``resumeTransaction`` does through reflection.
  Kafka answers a repeated commit of the same epoch with success, so this is idempotent.
- A restored writer aborts what the failed attempt left open: it initializes ids from its
  checkpointed ``n`` upwards (``InitProducerId`` aborts an open transaction and fences its
  producer) until it finds one never used (epoch 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.transaction import EndTxnRequest
from headwater.core import JsonSerializer, VersionedSerializer

__all__ = [
    "COMMITTABLE_SERIALIZER",
    "REGISTRY",
    "KafkaCommittable",
    "producer_identity",
    "resume_commit",
    "transactional_id",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KafkaCommittable:
    """A pre-committed transaction: flushed, open, waiting for its checkpoint to complete."""

    transactional_id: str
    producer_id: int
    epoch: int


COMMITTABLE_SERIALIZER: VersionedSerializer[KafkaCommittable] = JsonSerializer(
    version=1,
    to_json=lambda c: [c.transactional_id, c.producer_id, c.epoch],
    from_json=lambda _v, d: KafkaCommittable(str(d[0]), int(d[1]), int(d[2])),
)
"""Committables in checkpoints, format 1: ``[transactional_id, producer_id, epoch]``."""

REGISTRY: dict[str, AIOKafkaProducer] = {}
"""Producers of prepared transactions in this process, by transactional id, until committed."""


def transactional_id(prefix: str, subtask: int, number: int) -> str:
    """The transactional id of transaction ``number`` of ``subtask``."""
    return f"{prefix}-{subtask}-{number}"


def producer_identity(producer: AIOKafkaProducer) -> tuple[int, int]:
    """The producer id and epoch of an initialized transactional producer.

    aiokafka keeps them in its transaction manager and has no public accessor.
    """
    manager: Any = producer._txn_manager
    return int(manager.producer_id), int(manager.producer_epoch)


async def resume_commit(client: AIOKafkaClient, committable: KafkaCommittable) -> type[KafkaError]:
    """Commit the transaction of ``committable`` without its producer (``EndTxn``, commit).

    Returns Kafka's error class for the answer: ``NoError`` when committed (also when it had been
    committed before), ``InvalidProducerEpoch``/``ProducerFenced`` when the id was initialized
    again since (the transaction was aborted: it timed out or another producer took the id),
    a retriable error when the coordinator is busy or moving.
    """
    node = await client.coordinator_lookup(
        CoordinationType.TRANSACTION, committable.transactional_id
    )
    response = await client.send(
        node,
        EndTxnRequest(
            transactional_id=committable.transactional_id,
            producer_id=committable.producer_id,
            producer_epoch=committable.epoch,
            transaction_result=True,
        ),
    )
    error: type[KafkaError] = for_code(response.error_code)
    return error
