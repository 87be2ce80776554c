"""Connecting to the cluster, and the driver's ``execute_async`` bridged to asyncio.

The driver runs its I/O on its own event-loop thread and completes each ``ResponseFuture`` there.
:func:`aexecute` turns one into an asyncio future (one ``call_soon_threadsafe`` per request);
:func:`execute_concurrently` keeps up to ``concurrency`` statements in flight from the driver's
callbacks (as the driver's ``execute_concurrent`` does) and wakes the event loop once, when all of
them have answered. Nothing here blocks the event loop except :func:`connect`, which callers run
on the job's thread pool.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from headwater.connectors.cassandra._errors import (
    CassandraConnectionError,
    is_transient,
    server_message,
)
from headwater.connectors.cassandra._options import CassandraConnectionOptions, Consistency

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    ResultSet,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import Statement

__all__ = ["Connection", "aexecute", "connect", "consistency_level", "execute_concurrently"]


def consistency_level(consistency: Consistency) -> int:
    """The driver's ``ConsistencyLevel`` value of ``consistency``."""
    level: int = ConsistencyLevel.name_to_value[consistency.value]
    return level


@dataclass(frozen=True, slots=True)
class Connection:
    """A connected cluster and its session; :meth:`close` shuts both down (blocking)."""

    cluster: Cluster
    session: Session

    @property
    def protocol_version(self) -> int:
        """The protocol version in use (negotiated, or the one set)."""
        version: int = self.cluster.protocol_version
        return version

    def close(self) -> None:
        """Shut the cluster down (blocking: run it on the thread pool)."""
        self.cluster.shutdown()


def connect(
    options: CassandraConnectionOptions,
    who: str,
    row_factory: Callable[[list[str], list[tuple[Any, ...]]], Any] | None = None,
) -> Connection:
    """Connect to the cluster (blocking: run it on the job's thread pool).

    Raises:
        CassandraConnectionError: the cluster refused the connection for good; the message says
            what to change (``protocol_version``, credentials) and never shows the password.
        NoHostAvailable: no node answered (transient, retried by callers' policies).
    """
    profile = ExecutionProfile(
        request_timeout=options.request_timeout.total_seconds(),
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=options.local_datacenter or "")
        ),
    )
    if row_factory is not None:
        profile.row_factory = row_factory
    kwargs: dict[str, Any] = {}
    if options.protocol_version is not None:
        kwargs["protocol_version"] = options.protocol_version
    if options.username is not None and options.password is not None:
        kwargs["auth_provider"] = PlainTextAuthProvider(
            username=options.username, password=options.password.get_secret_value()
        )
    cluster = Cluster(
        list(options.contact_points),
        port=options.port,
        connect_timeout=options.connect_timeout.total_seconds(),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        **kwargs,
    )
    try:
        session = cluster.connect()
    except NoHostAvailable as exc:
        cluster.shutdown()
        if is_transient(exc):
            raise
        message = server_message(exc)
        hint = ""
        if "protocol version" in message.lower():
            hint = (
                " The server does not speak the protocol version the driver tried: set "
                "connection.protocol_version (3 for Cassandra 2.1, 4 for 3.x)."
            )
        raise CassandraConnectionError(
            f"{who}: cannot connect to {', '.join(options.contact_points)}:{options.port}: "
            f"{message}.{hint}"
        ) from None
    except Exception:
        cluster.shutdown()
        raise
    return Connection(cluster, session)


def aexecute(
    session: Session,
    statement: Statement | str,
    parameters: Sequence[Any] | None = None,
    *,
    paging_state: bytes | None = None,
) -> asyncio.Future[ResultSet]:
    """Send ``statement`` with ``execute_async``; the asyncio future completes with its result.

    Call it on the event loop. The result is the first page (``current_rows``, ``paging_state``);
    the future fails with the driver's exception.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[ResultSet] = loop.create_future()
    response = session.execute_async(statement, parameters, paging_state=paging_state)

    def settle(error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(response.result())  # complete: does not wait

    response.add_callbacks(
        lambda _rows: loop.call_soon_threadsafe(settle, None),
        lambda error: loop.call_soon_threadsafe(settle, error),
    )
    return future


class _ConcurrentRun:
    """Statements sent with at most ``concurrency`` in flight; completes one asyncio future.

    Statements sharing a key (a partition) form a lane: one of them is in flight at a time, in
    order. After a transient failure in a lane, its later statements are not sent and report that
    failure too, so sending them again later keeps their order.
    """

    def __init__(
        self,
        session: Session,
        statements: Sequence[Statement],
        keys: Sequence[Hashable] | None,
        concurrency: int,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[list[BaseException | None]],
    ) -> None:
        self._session = session
        self._statements = statements
        self._keys = keys
        self._concurrency = concurrency
        self._loop = loop
        self._future = future
        self._errors: list[BaseException | None] = [None] * len(statements)
        self._lock = threading.Lock()
        self._ready = deque(range(len(statements)))
        self._lanes: dict[Hashable, deque[int]] = {}  # busy key -> statements waiting for it
        self._in_flight = 0
        self._pending = len(statements)
        if not statements:
            future.set_result([])
            return
        with self._lock:
            sends = self._take_ready()
        self._send_all(sends)

    def _take_ready(self) -> list[int]:
        """Statements to send now (hold the lock): ready ones whose lane is free."""
        sends = []
        keys = self._keys
        while self._in_flight < self._concurrency and self._ready:
            index = self._ready.popleft()
            if keys is not None:
                waiting = self._lanes.get(keys[index])
                if waiting is not None:
                    waiting.append(index)
                    continue
                self._lanes[keys[index]] = deque()
            self._in_flight += 1
            sends.append(index)
        return sends

    def _send_all(self, indexes: list[int]) -> None:
        for index in indexes:
            try:
                response: ResponseFuture = self._session.execute_async(self._statements[index])
            except Exception as exc:  # refused before sending (e.g. the session is shut down)
                self._done(index, exc)
                continue
            response.add_callbacks(
                self._succeeded, self._failed, callback_args=(index,), errback_args=(index,)
            )

    # Called on the driver's thread (or in _send_all).
    def _succeeded(self, _rows: Any, index: int) -> None:
        self._done(index, None)

    def _failed(self, error: BaseException, index: int) -> None:
        self._done(index, error)

    def _done(self, index: int, error: BaseException | None) -> None:
        sends: list[int] = []
        with self._lock:
            self._errors[index] = error
            self._pending -= 1
            self._in_flight -= 1
            if self._keys is not None:
                key = self._keys[index]
                waiting = self._lanes[key]
                if error is not None and is_transient(error):
                    for skipped in waiting:  # not sent: they go again after this one
                        self._errors[skipped] = error
                    self._pending -= len(waiting)
                    waiting.clear()
                if waiting:
                    sends.append(waiting.popleft())  # the lane's next, in order
                    self._in_flight += 1
                else:
                    del self._lanes[key]
            sends += self._take_ready()
            finished = self._pending == 0
        self._send_all(sends)
        if finished:
            self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self._future.done():
            self._future.set_result(self._errors)


def execute_concurrently(
    session: Session,
    statements: Sequence[Statement],
    concurrency: int,
    keys: Sequence[Hashable] | None = None,
) -> asyncio.Future[list[BaseException | None]]:
    """Send ``statements`` with at most ``concurrency`` in flight; wake the loop once at the end.

    The future's result has one entry per statement: ``None`` if it succeeded, else the driver's
    exception. With ``keys`` (one per statement, e.g. its partition key), statements of one key
    are sent one at a time in order, so the driver's client-side timestamps follow their order
    and the last write of a row wins; a transient failure fails the key's later statements too.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[BaseException | None]] = loop.create_future()
    _ConcurrentRun(session, statements, keys, concurrency, loop, future)
    return future
