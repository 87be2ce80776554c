"""Translation of aiokafka's errors into headwater's tree, at the connector boundary.

Retriable Kafka errors (lost connections, leader changes, timeouts) become
:class:`~headwater.core.RetryableError`; the rest (authorization, unknown topics, fencing) become
:class:`~headwater.core.FatalError`. Messages name the operation and the Kafka error, never client
settings, so credentials cannot leak through them.
"""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, KafkaError
from headwater.core import ConnectorError, FatalError, RetryableError

__all__ = ["translate"]


def translate(exc: BaseException, what: str) -> ConnectorError:
    """A headwater error for ``exc`` raised while doing ``what`` (raise it ``from exc``)."""
    retriable = isinstance(exc, KafkaConnectionError | OSError | TimeoutError) or bool(
        isinstance(exc, KafkaError) and exc.retriable
    )
    kind = RetryableError if retriable else FatalError
    return kind(f"kafka: {what} failed: {type(exc).__name__}: {exc}")
