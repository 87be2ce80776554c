"""The one exception type of :mod:`servicekit`."""

from __future__ import annotations

__all__ = ["ServiceError"]


class ServiceError(Exception):
    """A server could not be installed, started, reached or stopped.

    The message is meant for a person: it names the service, what was tried and, for a
    server that did not come up, the last lines of its log.
    """
