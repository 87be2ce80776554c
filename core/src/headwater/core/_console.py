"""Output for people: tables with headers, drawn with rich on a terminal and as plain text elsewhere.

rich is optional (``pip install 'headwater-core[rich]'``); without it, or when the stream is not a
terminal, tables are plain aligned columns that read well in logs and pipes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from headwater.core._errors import HeadwaterError

__all__ = [
    "error_summary",
    "format_count",
    "install_excepthook",
    "plain_table",
    "print_table",
    "rich_console",
    "rich_table",
    "user_frame",
]


def rich_console(stream: TextIO) -> Any | None:
    """A rich ``Console`` on ``stream`` if it is a terminal and rich is installed, else ``None``."""
    if not _isatty(stream) or importlib.util.find_spec("rich") is None:
        return None
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=True)  # long lines (paths) unbroken


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def format_count(value: float | int | None) -> str:
    """``12,345``, or ``-`` when unknown."""
    return "-" if value is None else f"{int(value):,}"


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "") -> str:
    """Aligned columns under a header line; numbers (cells starting with a digit) to the right."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if cell[:1] in "0123456789-" and i > 0 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    stream: TextIO,
    *,
    title: str | None = None,
) -> None:
    """A table with a header row: rich's on a terminal, plain columns elsewhere."""
    console = rich_console(stream)
    if console is None:
        if title:
            stream.write(title + "\n")
        stream.write(plain_table(headers, rows, indent="  " if title else "") + "\n")
        stream.flush()
        return
    console.print(rich_table(headers, rows, title=title))


def rich_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None) -> Any:
    """A rich ``Table`` (rich must be installed): numeric columns right-aligned."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    numeric = [
        bool(rows) and all(isinstance(r[i], str) and r[i][:1] in "0123456789-" for r in rows)
        for i in range(len(headers))
    ]
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if numeric[i] and i > 0 else "left")
    for row in rows:
        table.add_row(*row)
    return table


_PACKAGE_DIRS = tuple(
    str(Path(p).resolve()) + os.sep
    for p in (
        *[sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")],
        # headwater's own packages, wherever they are installed (editable checkouts too)
        *(str(Path(m).parent) for m in (getattr(sys.modules.get("headwater"), "__path__", []))),
    )
)
"""Code that is not the user's: the standard library, installed packages, headwater itself."""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first (``__cause__``, else an implicit ``__context__``)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return chain


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of user code in the exception chain (where the user's code failed)."""
    for error in reversed(_chain(exc)):
        frames = traceback.extract_tb(error.__traceback__)
        for frame in reversed(frames):
            name = str(Path(frame.filename).resolve())
            if not frame.filename.startswith("<") and not name.startswith(_PACKAGE_DIRS):
                return frame
    return None


def error_summary(exc: BaseException) -> str:
    """Two lines for people: what failed (the root cause's type and message), and where.

    The first line is the outermost error's message (it names the job, the task and, where known,
    the record) with the root cause's type; the second the user-code frame ``file:line in
    function`` and its source line.
    """
    chain = _chain(exc)
    root = chain[-1]
    message = str(exc) or type(exc).__name__
    if root is not exc and type(root).__name__ not in message:
        message = f"{message} ({type(root).__name__}: {root})"
    lines = [f"error: {type(exc).__name__}: {message}"]
    frame = user_frame(exc)
    if frame is not None:
        code = f": {frame.line.strip()}" if frame.line else ""
        lines.append(f"  at {frame.filename}:{frame.lineno} in {frame.name}{code}")
    return "\n".join(lines)


_installed = False


def install_excepthook() -> None:
    """Print :func:`error_summary` above the traceback of an uncaught headwater error (once).

    For ``python job.py``: the traceback stays (a script's user expects it), the summary says
    first what failed and where in the user's code.
    """
    global _installed
    if _installed:
        return
    _installed = True
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if isinstance(value, HeadwaterError):
            sys.stderr.write("headwater: " + error_summary(value) + "\n\n")
        previous(kind, value, tb)

    sys.excepthook = hook
