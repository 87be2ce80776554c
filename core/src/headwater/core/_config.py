"""Job settings: checkpointing and restart strategies. Validated when constructed."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from headwater.core._errors import ConfigurationError
from headwater.core._settings import check_duration, check_int, check_number, check_type

__all__ = [
    "CheckpointConfig",
    "ExponentialBackoffRestart",
    "FailureRateRestart",
    "FixedDelayRestart",
    "NoRestart",
    "RestartStrategy",
]


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalize a (possibly frozen) dataclass field


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    """How and where checkpoints are taken.

    Every setting is checked when the config is built. Durations take a ``timedelta`` or a
    string: ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"``, ISO 8601 ``"PT5S"``.

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
        owner = "CheckpointConfig"
        _set(
            self,
            "interval",
            check_duration(owner, "interval", self.interval, positive=True, optional=True),
        )
        _set(self, "timeout", check_duration(owner, "timeout", self.timeout, positive=True))
        _set(self, "min_pause", check_duration(owner, "min_pause", self.min_pause))
        check_int(owner, "retained", self.retained, minimum=1)
        check_int(owner, "incremental_full_every", self.incremental_full_every, minimum=1)
        check_type(owner, "allow_non_restored_state", self.allow_non_restored_state, bool)
        check_type(owner, "incremental", self.incremental, bool)
        if self.storage is not None:
            check_type(owner, "storage", self.storage, (str, Path))
            _set(self, "storage", Path(self.storage))  # accept str paths too
        if self.restore_from is not None:
            check_type(owner, "restore_from", self.restore_from, (str, Path))
            if isinstance(self.restore_from, str) and not self.restore_from.strip():
                raise ConfigurationError(
                    f"{owner}: restore_from must be 'latest' or a checkpoint path, got ''"
                )
        if self.incremental and self.storage is None:
            raise ConfigurationError(f"{owner}: incremental needs a storage directory")
        if self.restore_from == "latest" and self.storage is None:
            raise ConfigurationError(
                f"{owner}: restore_from='latest' needs a checkpoint storage directory (storage=...)"
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
        check_int("FixedDelayRestart", "attempts", self.attempts, minimum=0)
        self.delay = check_duration("FixedDelayRestart", "delay", self.delay)

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
        owner = "ExponentialBackoffRestart"
        self.initial = check_duration(owner, "initial", self.initial, positive=True)
        self.maximum = check_duration(owner, "maximum", self.maximum)
        self.reset_after = check_duration(owner, "reset_after", self.reset_after)
        if self.maximum < self.initial:
            raise ConfigurationError(f"{owner}: maximum must be >= initial")
        check_number(owner, "multiplier", self.multiplier, minimum=1)
        check_number(owner, "jitter", self.jitter, minimum=0, maximum=1)
        check_int(owner, "attempts", self.attempts, minimum=0, optional=True)

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
        check_int("FailureRateRestart", "max_failures", self.max_failures, minimum=1)
        self.interval = check_duration(
            "FailureRateRestart", "interval", self.interval, positive=True
        )
        self.delay = check_duration("FailureRateRestart", "delay", self.delay)

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
