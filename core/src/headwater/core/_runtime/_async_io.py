"""The async I/O operator: bounded concurrent calls; results in order or as they complete."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from headwater.core._async_io import AsyncSpec
from headwater.core._errors import TaskFailedError
from headwater.core._runtime._channels import RecordBatch
from headwater.core._runtime._context import OperatorContext
from headwater.core._runtime._operators import Operator

__all__ = ["AsyncIoOperator"]

_STATE = "async-in-flight"
_READY = object()


class _Call:
    __slots__ = ("task", "timestamp", "value")

    def __init__(self, value: Any, timestamp: int | None, task: asyncio.Task[Any]) -> None:
        self.value = value
        self.timestamp = timestamp
        self.task = task


class AsyncIoOperator(Operator):
    """Heads its task; completed calls post a control element so the task emits them promptly."""

    async def open(self, context: OperatorContext) -> None:
        await super().open(context)
        self.spec: AsyncSpec = self.transformation.payload
        self.queue: deque[_Call] = deque()
        self.retries = context.metric_group.counter("numAsyncRetries")
        self.timeouts = context.metric_group.counter("numAsyncTimeouts")
        self._restored = context.get_list_state(_STATE)
        self._reissue = list(self._restored.get())
        self._slot: asyncio.Future[None] | None = None

    async def _call(self, value: Any) -> Any:
        spec = self.spec
        retry = spec.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(spec.timeout):
                    result = await spec.function(value)
            except TimeoutError:
                if (
                    retry is not None
                    and attempt < retry.max_attempts
                    and retry.retry_on_exception(TimeoutError())
                ):
                    self.retries.inc()
                    await asyncio.sleep(retry.delay(attempt))
                    continue
                self.timeouts.inc()
                if spec.on_timeout is not None:
                    return spec.on_timeout(value)
                raise
            except Exception as exc:
                if (
                    retry is not None
                    and attempt < retry.max_attempts
                    and retry.retry_on_exception(exc)
                ):
                    self.retries.inc()
                    await asyncio.sleep(retry.delay(attempt))
                    continue
                raise
            if (
                retry is not None
                and retry.retry_on_result is not None
                and attempt < retry.max_attempts
                and retry.retry_on_result(result)
            ):
                self.retries.inc()
                await asyncio.sleep(retry.delay(attempt))
                continue
            return result

    def _start(self, value: Any, timestamp: int | None) -> None:
        task = asyncio.get_running_loop().create_task(self._call(value))
        task.add_done_callback(self._completed)
        self.queue.append(_Call(value, timestamp, task))

    def _completed(self, _task: asyncio.Task[Any]) -> None:
        waiter = self._slot
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # the task is waiting for capacity: it drains itself
        elif self.context.post_control is not None:
            self.context.post_control(_READY)

    async def process(self, batch: RecordBatch) -> None:
        if self._reissue:
            for value, ts in self._reissue:
                await self._admit(value, ts)
            self._reissue = []
        values = batch.values
        self.records_in += len(values)
        stamps = batch.timestamps or [None] * len(values)
        for value, ts in zip(values, stamps, strict=True):
            await self._admit(value, ts)
        await self._drain()

    async def _admit(self, value: Any, ts: int | None) -> None:
        while len(self.queue) >= self.spec.capacity:
            await self._drain()
            if len(self.queue) < self.spec.capacity:
                break
            await self._next_completion()
        self._start(value, ts)

    async def _next_completion(self) -> None:
        self._slot = asyncio.get_running_loop().create_future()
        try:
            await self._slot
        finally:
            self._slot = None

    async def _drain(self) -> None:
        """Emit completed results: the done prefix (ordered) or every done call (unordered)."""
        done: list[_Call] = []
        if self.spec.ordered:
            while self.queue and self.queue[0].task.done():
                done.append(self.queue.popleft())
        else:
            done = [c for c in self.queue if c.task.done()]
            if done:
                self.queue = deque(c for c in self.queue if not c.task.done())
        if not done:
            return
        out: list[Any] = []
        stamps: list[int | None] = []
        for call in done:
            exc = call.task.exception()
            if exc is not None:
                raise TaskFailedError(
                    f"async I/O '{self.name}' failed for record {call.value!r:.200}: "
                    f"{type(exc).__name__}: {exc}",
                    task=self.name,
                    operator=self.name,
                ) from exc
            out.append(call.task.result())
            stamps.append(call.timestamp)
        has_ts = any(t is not None for t in stamps)
        await self._emit(out, stamps if has_ts else None)

    async def on_control(self, item: Any) -> None:
        if item is _READY:
            await self._drain()

    async def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        await self._drain()
        # Calls still in flight are part of the checkpoint and are made again after a restore.
        pending = [[c.value, c.timestamp] for c in self.queue] + self._reissue
        self._restored.update(pending)
        return await super().snapshot(checkpoint_id)

    async def end_input(self) -> None:
        for value, ts in self._reissue:
            await self._admit(value, ts)
        self._reissue = []
        while self.queue:
            await self._next_completion()
            await self._drain()

    async def close(self) -> None:
        for call in self.queue:
            call.task.cancel()
