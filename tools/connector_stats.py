"""``python -m tools connector-stats``: what each connector keeps, in lines per part.

Every connector package's modules are sorted into the parts of a connector by their file name
(`PARTS`, first match wins): the source (splits, readers, enumerators, emitters), the sink
(writers, committers), lookups, options, the pipeline-file glue, and the rest (clients, records,
errors, the registration), which the source and the sink share. Tests are the package's
``tests/``. Lines are those with code or docstrings: blank lines and comment-only lines do not
count.

The docs page ``connectors/index.md`` shows the same table (``<!-- headwater:stats -->``,
generated when the site is built), so a reader sees what a connector written on connector-base
still has to contain.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.workspace import REPOSITORY, Kind, Workspace, load

__all__ = [
    "COLUMNS",
    "PARTS",
    "ConnectorStats",
    "classify",
    "count_lines",
    "main",
    "stats",
    "table",
]

PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pipeline", ("pipeline",)),
    ("options", ("options",)),
    ("lookup", ("lookup",)),
    ("source", ("source", "reader", "enumerator", "split", "emitter", "consumer", "shards",
                "fan_out", "planning", "tokens")),
    ("sink", ("sink", "writer", "writes", "committer", "transactions", "actions", "kpl",
              "buckets", "rolling", "upsert")),
)  # fmt: skip
"""The parts of a connector and the words of the module names that belong to each."""
COLUMNS = ("source", "sink", "lookup", "options", "pipeline", "shared", "tests")
"""The columns of the table, in order (``shared``: every module no part claims)."""


def classify(module: Path) -> str:
    """The part a module of a connector's source tree belongs to (`PARTS`, else ``shared``)."""
    name = module.stem.lstrip("_").lower()
    for part, words in PARTS:
        if any(word in name for word in words):
            return part
    return "shared"


def count_lines(path: Path) -> int:
    """The lines of ``path`` that hold code or docstrings (not blank, not only a comment)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))


@dataclass(frozen=True)
class ConnectorStats:
    """The line counts of one connector package, by column (`COLUMNS`)."""

    package: str
    lines: dict[str, int]

    @property
    def code(self) -> int:
        """Every line of the package's source (its tests excluded)."""
        return sum(n for column, n in self.lines.items() if column != "tests")


def stats(workspace: Workspace) -> list[ConnectorStats]:
    """The line counts of every connector package of ``workspace``, by name."""
    found = []
    for package in sorted(workspace.packages, key=lambda p: p.name):
        if package.kind is not Kind.CONNECTOR:
            continue
        lines = dict.fromkeys(COLUMNS, 0)
        for module in sorted((package.path / "src").rglob("*.py")):
            lines[classify(module)] += count_lines(module)
        for module in sorted((package.path / "tests").rglob("*.py")):
            lines["tests"] += count_lines(module)
        found.append(ConnectorStats(package.name, lines))
    return found


def table(rows: list[ConnectorStats]) -> str:
    """The Markdown table of ``rows``: one line per connector, a column per part, and totals."""
    header = ["connector", *COLUMNS[:-1], "code", "tests"]
    out = [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for row in rows:
        cells = [f"`{row.package}`", *(str(row.lines[c]) for c in COLUMNS[:-1])]
        cells += [f"**{row.code}**", str(row.lines["tests"])]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    """Print the table of every connector of the workspace; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m tools connector-stats",
        description="Lines per connector: source, sink, lookup, options, pipeline glue, "
        "shared code and tests.",
    )
    parser.add_argument("--root", type=Path, default=REPOSITORY, help="default: this repository")
    args = parser.parse_args(argv)
    sys.stdout.write(table(stats(load(args.root))))
    return 0
