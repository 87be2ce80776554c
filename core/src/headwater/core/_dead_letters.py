"""Dead letters: records a source could not read, as a stream of the job (``dead_letters()``).

A connector's error policy (connector-base's ``DeadLetterOnError()`` without a collector) calls
:func:`emit_dead_letter` for each bad record while the source task polls its reader. The source
task buffers the letters with the records of the same poll and sends them to the source's side
output :data:`DEAD_LETTER_TAG` before the next checkpoint barrier, so the letters are
checkpointed like any other output: a restore re-reads (and re-reports) exactly the records
after the checkpoint's positions, and a transactional sink of ``stream.dead_letters()`` neither
duplicates nor loses them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from headwater.core._errors import ConfigurationError

__all__ = ["DEAD_LETTER_TAG", "emit_dead_letter"]

DEAD_LETTER_TAG = "headwater.dead_letters"
"""The side-output tag of a source's dead letters (what ``DataStream.dead_letters()`` reads)."""

collector: ContextVar[Callable[[Any], None] | None] = ContextVar(
    "headwater_dead_letters", default=None
)
"""Set by a source task around each poll of its reader when the job reads its dead letters."""


def emit_dead_letter(letter: Any) -> None:
    """Send ``letter`` to the ``dead_letters()`` stream of the source being polled.

    Call it from a source reader's ``poll_next`` (a record emitter, a format's error policy), so
    the letter is checkpointed with the records of the same poll. Raises
    :class:`ConfigurationError` when the job does not read that source's ``dead_letters()``
    (or when called outside a poll), rather than dropping the letter.
    """
    collect = collector.get()
    if collect is None:
        raise ConfigurationError(
            "a bad record was sent to the source's dead letters, but the job does not read them: "
            "call .dead_letters() on the source's stream and sink it (or give the error policy "
            "a collector)"
        )
    collect(letter)
