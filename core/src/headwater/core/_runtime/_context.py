"""The context objects the runtime hands to readers, writers, enumerators and functions."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from headwater.core._functions import ListState
from headwater.core._metrics import MetricGroup
from headwater.core._state import StateBackend
from headwater.core._state_codec import StateValueError, encode_state

__all__ = ["BlockingPool", "CheckedListState", "OperatorContext"]

R = TypeVar("R")


class BlockingPool:
    """The job's bounded pool of daemon threads for blocking calls; never block the event loop.

    Unlike ``ThreadPoolExecutor``, whose threads the interpreter joins at exit, a call stuck in a
    client library (a half-open connection) cannot keep the process alive after the job ended.
    """

    def __init__(self, size: int, name: str = "headwater-blocking") -> None:
        self._size = size
        self._name = name
        self._work: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._closed = False

    def run(self, fn: Callable[..., R], *args: Any) -> Awaitable[R]:
        """Run ``fn(*args)`` on the pool; await the result on the loop."""
        if self._closed:
            raise RuntimeError("the job's blocking pool is shut down")
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        self._work.put((future, fn, args))
        with self._lock:
            if self._idle == 0 and self._threads < self._size:
                self._threads += 1
                threading.Thread(
                    target=self._serve, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
            else:
                self._idle -= 1 if self._idle else 0
        return asyncio.wrap_future(future)

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Stop accepting work; running calls finish in the background (daemon threads)."""
        self._closed = True
        with self._lock:
            threads = self._threads
        for _ in range(threads):
            self._work.put(None)


_WorkItem = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class OperatorContext:
    """Everything an operator subtask sees of the runtime.

    It is a RuntimeContext, a WriterInitContext and a SourceReaderContext at once.
    """

    def __init__(
        self,
        *,
        operator_name: str,
        operator_uid: str,
        job_name: str,
        subtask_index: int,
        parallelism: int,
        max_parallelism: int,
        metric_group: MetricGroup,
        pool: BlockingPool,
        attempt: int,
        restored_checkpoint_id: int | None,
        restored: dict[str, Any] | None,
        state_backend: StateBackend | None = None,
        incremental_dir: Path | None = None,
        incremental_full_every: int = 10,
        is_savepoint: Callable[[int], bool] | None = None,
        checkpoint_dir: Callable[[int], Path | None] | None = None,
    ) -> None:
        self.operator_name = operator_name
        self.operator_uid = operator_uid
        self.job_name = job_name
        self.subtask_index = subtask_index
        self.parallelism = parallelism
        self.max_parallelism = max_parallelism
        self.metric_group = metric_group
        self.attempt = attempt
        self.restored_checkpoint_id = restored_checkpoint_id
        self.restored: dict[str, Any] = restored or {}
        self.state_backend = state_backend or StateBackend.memory()
        self.incremental_dir = incremental_dir
        """Where incremental keyed state files go (``None``: every checkpoint is full)."""
        self.incremental_full_every = incremental_full_every
        self.is_savepoint: Callable[[int], bool] = is_savepoint or (lambda _id: False)
        self.checkpoint_dir: Callable[[int], Path | None] = checkpoint_dir or (lambda _id: None)
        """The directory a checkpoint's (or savepoint's) files go to (``None``: kept in memory)."""
        self._pool = pool
        self.list_states: dict[str, ListState] = {}
        self.union_states: dict[str, ListState] = {}
        self.post_control: Callable[[Any], None] | None = None
        """Set by operator tasks: queue a control element for the task (timers, async results)."""
        self.split_requests: Callable[[], None] = _unsupported("send_split_request")
        self.source_events: Callable[[Any], None] = _unsupported("send_source_event")

    def run_blocking(self, fn: Callable[..., R], /, *args: Any) -> Awaitable[R]:
        """Run a blocking call on the job's bounded thread pool."""
        return self._pool.run(fn, *args)

    def get_list_state(self, name: str) -> ListState:
        """Operator list state ``name``."""
        return self._state(self.list_states, "list", name)

    def get_union_list_state(self, name: str) -> ListState:
        """Operator union list state ``name``."""
        return self._state(self.union_states, "union", name)

    def _state(self, states: dict[str, ListState], kind: str, name: str) -> ListState:
        state = states.get(name)
        if state is None:
            restored = list(self.restored.get(kind, {}).get(name, []))
            state = states[name] = CheckedListState(restored, self.operator_name, name)
        return state

    def schedule_tick(self, delay: float) -> None:
        """Ask the task to call ``on_processing_time`` after ``delay`` seconds."""
        asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        if self.post_control is not None:
            from headwater.core._runtime._channels import ProcessingTimeTick

            self.post_control(ProcessingTimeTick())

    def send_split_request(self) -> None:
        """Ask the source's enumerator for a split."""
        self.split_requests()

    def send_source_event(self, event: Any, /) -> None:
        """Send a custom event to the source's enumerator."""
        self.source_events(event)


class CheckedListState(ListState):
    """Operator list state that refuses values the state codec cannot write.

    ``add`` and ``update`` fail at once (not at the next checkpoint), naming operator and state.
    """

    __slots__ = ("_name", "_operator")

    def __init__(self, items: list[Any], operator: str, name: str) -> None:
        super().__init__(items)
        self._operator = operator
        self._name = name

    def _check(self, items: Any) -> None:
        try:
            encode_state(items)
        except StateValueError as exc:
            raise StateValueError(
                f"operator '{self._operator}': list state '{self._name}' cannot hold the value: "
                f"{exc}"
            ) from exc

    def update(self, items: Iterable[Any]) -> None:
        """Replace every item."""
        values = list(items)
        self._check(values)
        self.items = values

    def add(self, item: Any) -> None:
        """Append one item."""
        self._check(item)
        self.items.append(item)


def _unsupported(what: str) -> Callable[..., None]:
    def fail(*_: Any) -> None:
        raise RuntimeError(f"{what}() is only available to source readers")

    return fail
