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

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from headwater.connectors.base import Backoff, ErrorClass, RetryPolicy, retry, retry_blocking
from headwater.core import FatalError, RetryableError
from sqlalchemy import exc as sa_exc

__all__ = [
    "DatabaseRetries",
    "ErrorKind",
    "JdbcError",
    "JdbcRowError",
    "JdbcTimeoutError",
    "JdbcTransientError",
    "classify",
    "database_message",
    "describe_row",
    "redact_values",
    "within",
]

R = TypeVar("R")
_log = logging.getLogger("headwater.connectors.jdbc")

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


async def within(timeout: timedelta, call: Callable[[], Awaitable[R]]) -> R:
    """Await ``call()`` for at most ``timeout``; a hang becomes :class:`JdbcTimeoutError`."""
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            return await call()
    except TimeoutError as exc:
        raise JdbcTimeoutError(
            f"a database call took longer than operation_timeout ({timeout}); the connection "
            f"is probably dead (network partition) and the attempt restarts"
        ) from exc


def _retryable(error: BaseException) -> ErrorClass:
    return ErrorClass.RETRYABLE if classify(error) is ErrorKind.RETRYABLE else ErrorClass.FATAL


class DatabaseRetries:
    """connector-base's :func:`retry` for transient database errors (see :func:`classify`).

    Up to ``max_retries`` retries with exponential backoff and full jitter between ``initial``
    and ``maximum``; each retry is logged. Errors that are not transient propagate at once; a
    transient error that outlasts the retries becomes :class:`JdbcTransientError`.
    """

    def __init__(self, max_retries: int, initial: timedelta, maximum: timedelta) -> None:
        initial = max(initial, timedelta(milliseconds=1))
        self.policy = RetryPolicy(
            backoff=Backoff(initial=initial, maximum=max(initial, maximum)),
            max_attempts=max_retries + 1,
            classifier=_retryable,
        )

    async def run(
        self, call: Callable[[], Awaitable[R]], what: str, on_retry: Callable[[], None]
    ) -> R:
        """Await ``call()``, again after a backoff while it fails with a transient error.

        ``on_retry`` is called before each retry (for a metric).
        """
        try:
            return await retry(call, self.policy, on_retry=self._log(what, on_retry))
        except Exception as exc:
            if classify(exc) is not ErrorKind.RETRYABLE:
                raise
            raise _outlasted(exc, what) from exc

    def run_blocking(self, call: Callable[[], R], what: str) -> R:
        """:meth:`run` for worker threads and synchronous callers."""
        try:
            return retry_blocking(call, self.policy, on_retry=self._log(what, None))
        except Exception as exc:
            if classify(exc) is not ErrorKind.RETRYABLE:
                raise
            raise _outlasted(exc, what) from exc

    def _log(
        self, what: str, on_retry: Callable[[], None] | None
    ) -> Callable[[BaseException, int, timedelta], None]:
        retries = (self.policy.max_attempts or 1) - 1

        def log(error: BaseException, attempt: int, delay: timedelta) -> None:
            if on_retry is not None:
                on_retry()
            _log.warning(
                "jdbc: %s failed (%s); retry %d/%d in %.2fs",
                what,
                database_message(error),
                attempt,
                retries,
                delay.total_seconds(),
            )

        return log


def _outlasted(error: Exception, what: str) -> JdbcTransientError:
    """A transient ``error`` that outlasted the retries (its note says after how many)."""
    notes = getattr(error, "__notes__", None) or [""]
    return JdbcTransientError(f"jdbc: {what} failed ({notes[-1]}): {database_message(error)}")
