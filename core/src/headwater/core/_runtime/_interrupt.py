"""Ctrl-C and SIGTERM stop a running job gracefully: with a savepoint where there is storage.

The first signal stops the job with a savepoint into its checkpoint storage (or cancels it when
it has none); a second one ends the process at once. The job's caller gets a
:class:`JobInterruptedError` that says where the savepoint went and how to resume from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from headwater.core._errors import HeadwaterError, JobInterruptedError
from headwater.core._runtime._executor import JobClient, JobStatus, announce

__all__ = ["GracefulStop"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """Turns SIGINT/SIGTERM into a stop with savepoint of one job while it runs."""

    def __init__(self, client: JobClient, storage: Path | None) -> None:
        self._client = client
        self._storage = storage
        self.signal_number: int | None = None
        self.savepoint: Path | None = None
        self._failure: BaseException | None = None
        self._stopping: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[GracefulStop]:
        """Handle the signals while the block runs (only on the main thread, where they arrive)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        loop = asyncio.get_running_loop()
        try:
            for number in _SIGNALS:
                loop.add_signal_handler(number, self._on_signal, number)
        except NotImplementedError:  # an event loop without signal support (Windows)
            yield self
            return
        try:
            yield self
        finally:
            for number in _SIGNALS:
                loop.remove_signal_handler(number)

    def _on_signal(self, number: int) -> None:
        name = signal.Signals(number).name
        if self.signal_number is not None:
            announce(f"{name} again: stopping at once, without a savepoint")
            os._exit(128 + number)
        self.signal_number = number
        how = "with a savepoint" if self._storage is not None else "(no checkpoint storage)"
        announce(
            f"{name} received: stopping job '{self._client.job_name}' {how}; "
            f"press Ctrl-C again to stop at once"
        )
        self._stopping = asyncio.get_running_loop().create_task(self._stop())

    async def _stop(self) -> None:
        if self._storage is not None:
            try:
                self.savepoint = await self._client.stop_with_savepoint()
                return
            except (HeadwaterError, TimeoutError) as exc:  # failed, or expired (checkpoint timeout)
                self._failure = exc
                announce(f"the savepoint failed ({exc}); cancelling the job")
        await self._client.cancel()

    async def finish(self) -> None:
        """Wait for a stop in progress; raise :class:`JobInterruptedError` if a signal stopped the job."""
        if self._stopping is not None:
            with contextlib.suppress(HeadwaterError):  # the job's own error is raised by its wait()
                await self._stopping
        if self.signal_number is None:
            return
        if self.savepoint is None and self._client.status is JobStatus.FINISHED:
            return  # the job ended on its own before the stop took hold
        name = signal.Signals(self.signal_number).name
        job = self._client.job_name
        if self.savepoint is not None:
            message = (
                f"job '{job}' stopped by {name} with a savepoint at {self.savepoint}; resume "
                f"with CheckpointConfig(restore_from={str(self.savepoint)!r}) or "
                f"restore_from='latest'"
            )
        else:
            reason = "no checkpoint storage" if self._failure is None else str(self._failure)
            message = f"job '{job}' stopped by {name} without a savepoint ({reason})"
        raise JobInterruptedError(
            message, signal_number=self.signal_number, savepoint=self.savepoint
        )
