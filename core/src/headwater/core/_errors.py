"""The exception tree of headwater.

::

    HeadwaterError
    ├── ConfigurationError        invalid settings or options, raised when a job is built
    ├── SerializationError        a record or a piece of state cannot be (de)serialized
    ├── JobFailedError            the job failed and the restart strategy gave up
    │   └── TaskFailedError       (carried as __cause__) one subtask failed
    ├── JobCancelledError         the job was cancelled before it finished
    │   └── JobInterruptedError   stopped by Ctrl-C or SIGTERM (with a savepoint where possible)
    ├── CheckpointError           a checkpoint could not be taken, written or restored
    └── ConnectorError            an external system failed
        ├── RetryableError        may succeed when tried again (timeouts, throttling, lost connections)
        └── FatalError            will not succeed when tried again (missing resource, access denied)

Connectors translate their client library's errors at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CheckpointError",
    "ConfigurationError",
    "ConnectorError",
    "FatalError",
    "HeadwaterError",
    "JobCancelledError",
    "JobFailedError",
    "JobInterruptedError",
    "RetryableError",
    "SerializationError",
    "TaskFailedError",
]


class HeadwaterError(Exception):
    """The root of every error headwater raises."""


class ConfigurationError(HeadwaterError, ValueError):
    """An invalid setting or option; the message names the component and the option."""


class SerializationError(HeadwaterError):
    """A record or a piece of state could not be serialized or deserialized."""


class CheckpointError(HeadwaterError):
    """A checkpoint could not be taken, written, read or restored."""


class ConnectorError(HeadwaterError):
    """An external system failed."""


class RetryableError(ConnectorError):
    """A failure that may succeed when the operation is tried again."""


class FatalError(ConnectorError):
    """A failure that will not succeed when tried again; it fails the task at once."""


class TaskFailedError(HeadwaterError):
    """A subtask failed; the message names the task, the operator and, where known, the record."""

    def __init__(self, message: str, *, task: str, operator: str | None = None) -> None:
        super().__init__(message)
        self.task = task
        self.operator = operator


class JobFailedError(HeadwaterError):
    """The job failed and its restart strategy did not allow another attempt."""


class JobCancelledError(HeadwaterError):
    """The job was cancelled before it finished."""


class JobInterruptedError(JobCancelledError):
    """The job was stopped by a signal (Ctrl-C, SIGTERM) before it finished.

    ``savepoint`` is where it was saved (``None`` when it stopped without one); a job restored
    from it continues exactly where this one stopped.
    """

    def __init__(self, message: str, *, signal_number: int, savepoint: Path | None) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.savepoint = savepoint

    @property
    def exit_status(self) -> int:
        """The conventional exit status of a process ended by the signal (130, 143)."""
        return 128 + self.signal_number
