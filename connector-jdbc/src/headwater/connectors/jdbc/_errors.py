"""Classifying database errors, and the errors the JDBC connector raises.

::

    headwater.core.ConnectorError
    ├── RetryableError
    │   └── JdbcTransientError   lost connection, deadlock, serialization failure, lock timeout
    └── FatalError
        ├── JdbcError            anything else the database refused (missing table, bad SQL...)
        │   └── JdbcTimeoutError a call outlasted ``operation_timeout`` (a hung connection)
        └── JdbcRowError         one row refused (constraint, bad value), with its batch position
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from headwater.core import FatalError, RetryableError
from sqlalchemy import exc as sa_exc

__all__ = [
    "ErrorKind",
    "JdbcError",
    "JdbcRowError",
    "JdbcTimeoutError",
    "JdbcTransientError",
    "classify",
    "database_message",
    "describe_row",
    "redact_values",
]

# SQLSTATE classes/codes that a retry can fix (PostgreSQL; MariaDB reports some of them too).
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "53", "57P", "55P03")  # 55P03: lock timeout
# MySQL/MariaDB error numbers: deadlock, lock wait timeout, too many connections, server gone,
# lost connection, cannot connect, connection killed, query interrupted.
_TRANSIENT_MYSQL_CODES = frozenset({1205, 1213, 1040, 2006, 2013, 2003, 1927, 1317, 1053})
_REDACTED = "***"


class ErrorKind(enum.Enum):
    """How to react to an error from the database."""

    RETRYABLE = "retryable"
    """Try the same work again after a backoff (a new connection if it was lost)."""
    ROW = "row"
    """One or more rows are at fault; find them and apply the error policy."""
    FATAL = "fatal"
    """Trying again will not help; fail the task."""


class JdbcTransientError(RetryableError):
    """A transient database error that outlasted the retries."""


class JdbcError(FatalError):
    """The database refused a statement for a reason a retry cannot fix."""


class JdbcTimeoutError(JdbcError):
    """A database call took longer than ``operation_timeout``: the attempt fails and restarts.

    A hung call is not retried in place: its worker thread may still hold the connection, and only
    a restart from the last checkpoint is sure not to write the same rows twice.
    """


class JdbcRowError(FatalError):
    """The database refused one row; ``index`` is its position in the batch being flushed."""

    def __init__(self, message: str, *, index: int, row: str) -> None:
        super().__init__(message)
        self.index = index
        self.row = row


def _sqlstate(orig: BaseException) -> str | None:
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None


def classify(error: BaseException) -> ErrorKind:
    """Whether ``error`` (raised while executing a statement) is transient, a row's fault or fatal."""
    if isinstance(error, KeyError | TypeError):  # a row lacks a column or has an unusable value
        return ErrorKind.ROW
    if not isinstance(error, sa_exc.DBAPIError):
        return ErrorKind.FATAL
    if error.connection_invalidated:
        return ErrorKind.RETRYABLE
    orig = error.orig
    state = _sqlstate(orig) if orig is not None else None
    if state is not None and state.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
        return ErrorKind.RETRYABLE
    code = orig.args[0] if orig is not None and orig.args else None
    if isinstance(code, int) and code in _TRANSIENT_MYSQL_CODES:
        return ErrorKind.RETRYABLE
    if isinstance(error, sa_exc.OperationalError) and "locked" in str(orig):  # SQLite busy
        return ErrorKind.RETRYABLE
    if isinstance(error, sa_exc.IntegrityError | sa_exc.DataError):
        return ErrorKind.ROW
    if state is not None and state.startswith(("22", "23")):  # data exception, integrity
        return ErrorKind.ROW
    if (
        isinstance(error, sa_exc.OperationalError)
        and state is None
        and not isinstance(code, int)
        and getattr(orig, "sqlite_errorcode", None) is None
    ):
        # No SQLSTATE and no error number: the driver could not reach the server (psycopg's
        # "connection failed: Connection refused", a lost connection). SQLite's operational
        # errors ("no such table") carry a code of their own and stay fatal.
        return ErrorKind.RETRYABLE
    return ErrorKind.FATAL


def database_message(error: BaseException) -> str:
    """The database's own message (without SQLAlchemy's statement and parameter dump)."""
    if isinstance(error, sa_exc.DBAPIError) and error.orig is not None:
        return f"{type(error.orig).__name__}: {str(error.orig).strip()}"
    return f"{type(error).__name__}: {error}"


def redact_values(message: str, row: Any, redact: frozenset[str]) -> str:
    """``message`` (e.g. a database error quoting the row) with the ``redact`` values masked."""
    if isinstance(row, Mapping):
        for column in redact:
            value = row.get(column)
            if value is not None and str(value):
                message = message.replace(str(value), _REDACTED)
    return message


def describe_row(row: Any, redact: frozenset[str], limit: int = 300) -> str:
    """A short rendering of ``row`` for errors and logs, with the ``redact`` columns masked."""
    if isinstance(row, Mapping):
        row = {k: _REDACTED if k in redact else v for k, v in row.items()}
    text = repr(row)
    return text if len(text) <= limit else text[: limit - 3] + "..."
