"""The Cassandra connector's errors and the classification of the driver's exceptions.

::

    CassandraError (ConnectorError)
    ├── CassandraUnavailableError (RetryableError): timeouts, unavailable replicas, lost connections
    └── CassandraRequestError (FatalError): the server refused the request for good
        ├── CassandraConnectionError: cannot connect (protocol version, authentication, no keyspace)
        └── CassandraRecordError: one record was refused (a bad value, a missing key column)
"""

from __future__ import annotations

from headwater.connectors.base import ErrorClass, RetryPolicy, classify_error
from headwater.core import ConnectorError, FatalError, RetryableError

from cassandra import (
    DriverException,
    OperationTimedOut,
    ReadTimeout,
    RequestExecutionException,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage

__all__ = [
    "CassandraConnectionError",
    "CassandraError",
    "CassandraRecordError",
    "CassandraRequestError",
    "CassandraUnavailableError",
    "classify",
    "is_transient",
    "server_message",
    "with_cassandra_classifier",
]

_TRANSIENT = (
    OperationTimedOut,
    ReadTimeout,
    WriteTimeout,
    Unavailable,
    NoHostAvailable,
    ConnectionException,
    OverloadedErrorMessage,
    IsBootstrappingErrorMessage,
    ConnectionError,
    TimeoutError,
)


class CassandraError(ConnectorError):
    """Something went wrong talking to Cassandra."""


class CassandraUnavailableError(CassandraError, RetryableError):
    """A timeout, too few replicas alive, or a lost connection: worth trying again."""


class CassandraRequestError(CassandraError, FatalError):
    """Cassandra refused a request; trying again would not help."""


class CassandraConnectionError(CassandraRequestError):
    """The connector cannot connect or use the keyspace/table (the message says what to change)."""


class CassandraRecordError(CassandraRequestError):
    """A record was refused: the message names its key (or position) and the server's reason."""


def is_transient(error: BaseException) -> bool:
    """Whether a driver error may go away when the request is sent again."""
    if isinstance(error, NoHostAvailable):
        # Every host refused for a permanent reason (a protocol mismatch, bad credentials)?
        causes = list(error.errors.values())
        return not causes or any(is_transient(c) and not _permanent(c) for c in causes)
    return isinstance(error, (*_TRANSIENT, CassandraUnavailableError))


def _permanent(error: BaseException) -> bool:
    text = str(error).lower()
    return "protocol version" in text or "authentication" in text or "credentials" in text


def classify(error: BaseException) -> ErrorClass:
    """The classifier of the connector's retry policies: transient driver errors are retryable."""
    if is_transient(error):
        return ErrorClass.RETRYABLE
    if isinstance(error, RequestExecutionException | DriverException):
        return ErrorClass.FATAL
    return classify_error(error)


def server_message(error: BaseException) -> str:
    """A one-line description of a driver error, without option values."""
    if isinstance(error, NoHostAvailable):
        reasons = sorted({f"{type(e).__name__}: {e}" for e in error.errors.values()})
        return f"no host available ({'; '.join(reasons) or 'no host answered'})"
    return f"{type(error).__name__}: {error}"


def with_cassandra_classifier(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` classifying with :func:`classify`, unless it has a classifier of its own."""
    if policy.classifier is classify_error:
        return policy.model_copy(update={"classifier": classify})
    return policy
