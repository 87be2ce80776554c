"""The pymongo client of every part of the connector, and pymongo's errors in headwater's tree."""

from __future__ import annotations

from typing import Any

from headwater.connectors.base import ErrorClass
from headwater.connectors.mongodb._options import MongoConnectionOptions
from headwater.core import ConfigurationError, ConnectorError, FatalError, RetryableError
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.errors import (
    ConnectionFailure,
    InvalidURI,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)

__all__ = ["RETRYABLE_CODES", "classify", "connect", "translate"]

RETRYABLE_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)
"""Server error codes worth trying again (the server, not the request, was the problem)."""


def connect(options: MongoConnectionOptions, **extra: Any) -> AsyncMongoClient[Any]:
    """A client for ``options`` (it connects lazily, on the first operation).

    Raises:
        ConfigurationError: the URI is invalid; the message names the redacted URI only.
    """
    try:
        return AsyncMongoClient(options.uri.get_secret_value(), **options.client_kwargs(), **extra)
    except (InvalidURI, PyMongoConfigurationError, ValueError) as exc:
        # pymongo's message may quote the URI: say what is wrong without it.
        raise ConfigurationError(
            f"mongodb: option 'uri' is invalid ({options.where}): "
            f"{type(exc).__name__}; check the connection string's syntax and options"
        ) from None


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, RetryableError | ConnectionFailure | NotPrimaryError):
        return True
    if isinstance(error, PyMongoError) and (
        error.has_error_label("TransientTransactionError")
        or error.has_error_label("RetryableWriteError")
    ):
        return True
    if isinstance(error, OperationFailure | WriteConcernError):
        return error.code in RETRYABLE_CODES
    return isinstance(error, TimeoutError | ConnectionError)


def classify(error: BaseException) -> ErrorClass:
    """Retryable: network errors, NotWritablePrimary, WriteConflict, transient transaction errors."""
    if isinstance(error, FatalError):
        return ErrorClass.FATAL
    return ErrorClass.RETRYABLE if _is_retryable(error) else ErrorClass.FATAL


def translate(error: BaseException, doing: str, options: MongoConnectionOptions) -> ConnectorError:
    """``error`` as a :class:`RetryableError` or :class:`FatalError` naming what failed where."""
    if isinstance(error, ConnectorError):
        return error
    code = getattr(error, "code", None)
    detail = getattr(error, "details", None)
    message = (detail or {}).get("errmsg") if isinstance(detail, dict) else None
    text = message or str(error).split(", full error:")[0]
    hint = ""
    if code in (18, 13):
        hint = " (check the credentials in option 'uri' and the user's roles)"
    described = (
        f"mongodb: {doing} on {options.where} failed: {type(error).__name__}"
        f"{f' (code {code})' if code is not None else ''}: {text}{hint}"
    )
    described = options.masker()(described)  # a server's message may quote the URI
    if _is_retryable(error):
        return RetryableError(described)
    return FatalError(described)
