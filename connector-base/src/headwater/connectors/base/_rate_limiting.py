"""Rate-limiting strategies of the async sink: how much may be in flight, and how that adapts."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from headwater.core import ConfigurationError

__all__ = ["AIMDRateLimitingStrategy", "RateLimitingStrategy", "RequestInfo", "RequestResultInfo"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """A request about to be sent (or sent): how many entries it carries."""

    batch_size: int


@dataclass(frozen=True, slots=True)
class RequestResultInfo:
    """A request that completed: how many entries it carried and how many the system refused."""

    batch_size: int
    failed_entries: int
    throttled: bool = False
    """The whole request failed with a retryable error (throttling, timeout, lost connection)."""


class RateLimitingStrategy(ABC):
    """Decides whether the async sink may send another request now, and how large.

    Called on the event loop only. The writer calls :meth:`should_block` before every request,
    :meth:`register_in_flight_request` when it sends one and :meth:`register_completed_request`
    when it ends (success, partial failure or error).
    """

    @abstractmethod
    def should_block(self, request: RequestInfo) -> bool:
        """Whether ``request`` must wait for requests in flight to complete first.

        Must return ``False`` when nothing is in flight, or the writer could never send.
        """

    @abstractmethod
    def register_in_flight_request(self, request: RequestInfo) -> None:
        """A request was sent."""

    @abstractmethod
    def register_completed_request(self, result: RequestResultInfo) -> None:
        """A request completed."""

    @property
    @abstractmethod
    def max_batch_size(self) -> int:
        """The most entries the next request may carry."""


class AIMDRateLimitingStrategy(RateLimitingStrategy):
    """Congestion control: additive increase, multiplicative decrease of the entries in flight.

    Each completed request moves the limit of entries in flight by the share ``f`` of its entries
    that were refused (``f = 1`` when it failed as a whole with a retryable error): it is
    multiplied by ``1 - (1 - decrease_factor) * f`` and raised by ``increase_rate * (1 - f)``,
    within 1 and ``max_rate``. A fully successful request adds ``increase_rate``, a refused one
    applies ``decrease_factor``; a few scattered refusals (a few percent of 429s on single items)
    shrink the limit only a little, and it settles where the increase balances them
    (``2 * increase_rate * (1 - f) / f`` entries with the default factor) instead of collapsing.
    Requests in flight are also capped at ``max_in_flight_requests``. Because the increase is per
    request, the recovery after throttling speeds up as more requests are in flight.

    Args:
        max_in_flight_requests: the most concurrent requests.
        max_rate: the most entries in flight (and the starting limit).
        increase_rate: entries added to the limit per successful request.
        decrease_factor: the factor applied when a whole request is refused, within (0, 1).
    """

    def __init__(
        self,
        *,
        max_in_flight_requests: int,
        max_rate: int,
        increase_rate: int,
        decrease_factor: float = 0.5,
    ) -> None:
        if max_in_flight_requests < 1:
            raise ConfigurationError(
                "AIMDRateLimitingStrategy: max_in_flight_requests must be >= 1"
            )
        if max_rate < 1:
            raise ConfigurationError("AIMDRateLimitingStrategy: max_rate must be >= 1")
        if increase_rate < 1:
            raise ConfigurationError("AIMDRateLimitingStrategy: increase_rate must be >= 1")
        if not 0.0 < decrease_factor < 1.0:
            raise ConfigurationError(
                "AIMDRateLimitingStrategy: decrease_factor must be within (0, 1)"
            )
        self.max_in_flight_requests = max_in_flight_requests
        self.max_rate = max_rate
        self.increase_rate = increase_rate
        self.decrease_factor = decrease_factor
        self.rate = max_rate
        self.in_flight_requests = 0
        self.in_flight_entries = 0

    def should_block(self, request: RequestInfo) -> bool:
        """Block beyond the request cap or the current rate (never when idle)."""
        if self.in_flight_requests == 0:
            return False
        return (
            self.in_flight_requests >= self.max_in_flight_requests
            or self.in_flight_entries + request.batch_size > self.rate
        )

    def register_in_flight_request(self, request: RequestInfo) -> None:
        """Count the request in flight."""
        self.in_flight_requests += 1
        self.in_flight_entries += request.batch_size

    def register_completed_request(self, result: RequestResultInfo) -> None:
        """Shrink by the refused share of the request, grow by its accepted share."""
        self.in_flight_requests -= 1
        self.in_flight_entries -= result.batch_size
        if result.throttled or result.batch_size <= 0:
            refused = 1.0 if result.throttled or result.failed_entries else 0.0
        else:
            refused = min(1.0, result.failed_entries / result.batch_size)
        if not refused:
            self.rate = min(self.max_rate, self.rate + self.increase_rate)
            return
        shrunk = self.rate * (1.0 - (1.0 - self.decrease_factor) * refused)
        grown = shrunk + self.increase_rate * (1.0 - refused)
        self.rate = max(1, min(self.max_rate, math.floor(grown)))

    @property
    def max_batch_size(self) -> int:
        """The current rate: a request never carries more than may be in flight."""
        return self.rate
