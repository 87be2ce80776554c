"""Job settings: checkpointing and restart strategies. Validated when constructed."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from headwater.core._errors import ConfigurationError

__all__ = [
    "CheckpointConfig",
    "ExponentialBackoffRestart",
    "FailureRateRestart",
    "FixedDelayRestart",
    "NoRestart",
    "RestartStrategy",
]


def _positive(owner: str, name: str, value: timedelta | None) -> None:
    if value is not None and value <= timedelta(0):
        raise ConfigurationError(f"{owner}: {name} must be positive, got {value}")


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    """How and where checkpoints are taken.

    Args:
        interval: time between checkpoint triggers; ``None`` disables periodic checkpoints (a bounded
            job still takes a final checkpoint so two-phase sinks commit).
        timeout: a checkpoint not complete after this long is abandoned.
        min_pause: the least time between the end of one checkpoint and the next trigger.
        storage: the directory that keeps checkpoints; ``None`` keeps them in memory only (no
            recovery across process restarts).
        retained: how many completed checkpoints to keep in ``storage``.
        restore_from: ``"latest"`` to resume from the newest checkpoint in ``storage`` (if any), or
            the path of a checkpoint or savepoint directory to start from.
        allow_non_restored_state: start even if the checkpoint has state for operators (by uid)
            that the job no longer has.
        incremental: keyed state tables (not windows or timers) go to files under
            ``storage/shared``, and a checkpoint writes only the entries changed since the one
            before (a full copy every ``incremental_full_every`` checkpoints, and after a restore
            or a savepoint). Needs ``storage``; savepoints stay self-contained.
        incremental_full_every: the longest chain of files a restore reads per subtask.
    """

    interval: timedelta | None = None
    timeout: timedelta = timedelta(minutes=10)
    min_pause: timedelta = timedelta(0)
    storage: Path | None = None
    retained: int = 3
    restore_from: str | Path | None = None
    allow_non_restored_state: bool = False
    incremental: bool = False
    incremental_full_every: int = 10

    def __post_init__(self) -> None:
        _positive("checkpointing", "interval", self.interval)
        _positive("checkpointing", "timeout", self.timeout)
        if self.min_pause < timedelta(0):
            raise ConfigurationError(f"checkpointing: min_pause must be >= 0, got {self.min_pause}")
        if self.retained < 1:
            raise ConfigurationError(f"checkpointing: retained must be >= 1, got {self.retained}")
        if self.incremental_full_every < 1:
            raise ConfigurationError(
                f"checkpointing: incremental_full_every must be >= 1, got "
                f"{self.incremental_full_every}"
            )
        if self.incremental and self.storage is None:
            raise ConfigurationError("checkpointing: incremental needs a storage directory")
        if self.storage is not None:
            object.__setattr__(self, "storage", Path(self.storage))  # accept str paths too
        if self.restore_from == "latest" and self.storage is None:
            raise ConfigurationError(
                "checkpointing: restore_from='latest' needs a checkpoint storage directory"
            )


class RestartStrategy(ABC):
    """Decides whether and when a failed job is restarted from its latest checkpoint."""

    @abstractmethod
    def next_delay(self, now: float) -> timedelta | None:
        """Record a failure at monotonic time ``now``; the delay before restarting, or ``None`` to give up."""

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget earlier failures (a fresh job)."""


@dataclass
class NoRestart(RestartStrategy):
    """Fail the job on the first failure."""

    def next_delay(self, now: float) -> timedelta | None:
        """Always give up."""
        return None


@dataclass
class FixedDelayRestart(RestartStrategy):
    """Restart up to ``attempts`` times, waiting ``delay`` before each."""

    attempts: int = 3
    delay: timedelta = timedelta(seconds=1)
    _failures: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ConfigurationError(
                f"restart strategy: attempts must be >= 0, got {self.attempts}"
            )
        if self.delay < timedelta(0):
            raise ConfigurationError(f"restart strategy: delay must be >= 0, got {self.delay}")

    def next_delay(self, now: float) -> timedelta | None:
        """The fixed delay while attempts remain."""
        self._failures += 1
        return self.delay if self._failures <= self.attempts else None

    def reset(self) -> None:
        """Forget earlier failures."""
        self._failures = 0


@dataclass
class ExponentialBackoffRestart(RestartStrategy):
    """Restart with a delay that doubles (times ``multiplier``) per failure, with jitter.

    The delay returns to ``initial`` after ``reset_after`` without failures. ``attempts=None``
    restarts forever.
    """

    initial: timedelta = timedelta(seconds=1)
    maximum: timedelta = timedelta(minutes=1)
    multiplier: float = 2.0
    jitter: float = 0.1
    reset_after: timedelta = timedelta(minutes=10)
    attempts: int | None = None
    _current: float = field(default=0.0, init=False, repr=False)
    _last_failure: float | None = field(default=None, init=False, repr=False)
    _failures: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        _positive("restart strategy", "initial", self.initial)
        if self.maximum < self.initial:
            raise ConfigurationError("restart strategy: maximum must be >= initial")
        if self.multiplier < 1.0:
            raise ConfigurationError("restart strategy: multiplier must be >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigurationError("restart strategy: jitter must be within [0, 1]")

    def next_delay(self, now: float) -> timedelta | None:
        """The next backoff delay, or ``None`` when attempts are exhausted."""
        if (
            self._last_failure is not None
            and now - self._last_failure > self.reset_after.total_seconds()
        ):
            self._current = 0.0
            self._failures = 0
        self._last_failure = now
        self._failures += 1
        if self.attempts is not None and self._failures > self.attempts:
            return None
        base = self.initial.total_seconds()
        self._current = (
            base
            if self._current == 0.0
            else min(self._current * self.multiplier, self.maximum.total_seconds())
        )
        spread = self._current * self.jitter
        return timedelta(seconds=max(0.0, self._current + random.uniform(-spread, spread)))

    def reset(self) -> None:
        """Forget earlier failures."""
        self._current = 0.0
        self._failures = 0
        self._last_failure = None


@dataclass
class FailureRateRestart(RestartStrategy):
    """Restart after ``delay`` unless more than ``max_failures`` happened within ``interval``."""

    max_failures: int = 3
    interval: timedelta = timedelta(minutes=1)
    delay: timedelta = timedelta(seconds=1)
    _times: deque[float] = field(default_factory=deque, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ConfigurationError("restart strategy: max_failures must be >= 1")
        _positive("restart strategy", "interval", self.interval)

    def next_delay(self, now: float) -> timedelta | None:
        """The delay while the failure rate stays within the limit."""
        self._times.append(now)
        horizon = now - self.interval.total_seconds()
        while self._times and self._times[0] < horizon:
            self._times.popleft()
        return self.delay if len(self._times) <= self.max_failures else None

    def reset(self) -> None:
        """Forget earlier failures."""
        self._times.clear()
