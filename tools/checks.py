"""``python -m tools check [NAME...]``: the static checks CI runs, each reported on its own.

Every check runs (one failing does not stop the others), with its output, and a summary at the
end names each check and whether it passed; the exit status is 1 if any failed. ``tools/dev test``
runs them all as its first step, then the tests. The checks, in order:

- ``ruff-check``: ``ruff check`` over the repository (the rules of the root pyproject.toml);
- ``ruff-format``: ``ruff format --check`` (run ``ruff format`` to fix);
- ``mypy``: ``mypy`` strict over every package's ``src/`` (as ``nox -s typecheck``);
- ``docs``: ``mkdocs build --strict`` into a temporary directory (broken links, missing options
  descriptions and missing connector-page sections fail it);
- ``import-cycles``: no workspace modules importing each other in a cycle at import time;
- ``links``: no broken relative link in the repository's markdown (the docs read correctly in
  the repository, not only in the site; see tools/links.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Check:
    """One static check: its name and the command that runs it (with extra environment)."""

    name: str
    command: Callable[[Path], list[str]]
    env: Callable[[], dict[str, str]] = dict


def _sources() -> list[str]:
    return sorted(str(p.parent.relative_to(ROOT)) for p in ROOT.glob("*/src/headwater"))


CHECKS = (
    Check("ruff-check", lambda _tmp: [sys.executable, "-m", "ruff", "check", "."]),
    Check("ruff-format", lambda _tmp: [sys.executable, "-m", "ruff", "format", "--check", "."]),
    Check(
        "mypy",
        lambda _tmp: [sys.executable, "-m", "mypy", *_sources()],
        lambda: {"MYPYPATH": os.pathsep.join(_sources())},
    ),
    Check(
        "docs",
        lambda tmp: [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp)],
        lambda: {"NO_MKDOCS_2_WARNING": "1"},
    ),
    Check("import-cycles", lambda _tmp: [sys.executable, "-m", "tools", "import-cycles"]),
    Check("links", lambda _tmp: [sys.executable, "-m", "tools", "links"]),
)


def run(names: list[str]) -> int:
    """Run the checks named (all if none); print each one's outcome and a summary."""
    unknown = set(names) - {c.name for c in CHECKS}
    if unknown:
        print(f"unknown check(s): {', '.join(sorted(unknown))}; known: "
              f"{', '.join(c.name for c in CHECKS)}", file=sys.stderr)  # fmt: skip
        return 2
    outcomes: list[tuple[str, bool, float]] = []
    for check in CHECKS:
        if names and check.name not in names:
            continue
        print(f"\n=== check {check.name} ===", flush=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"hw-check-{check.name}-") as tmp:
            result = subprocess.run(
                check.command(Path(tmp)), cwd=ROOT, env={**os.environ, **check.env()}, check=False
            )
        outcomes.append((check.name, result.returncode == 0, time.monotonic() - started))
    print("\n=== checks ===")
    for name, passed, seconds in outcomes:
        print(f"{name:>14}: {'ok' if passed else 'FAILED'} ({seconds:.0f} s)")
    failed = [name for name, passed, _ in outcomes if not passed]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    """``python -m tools check [NAME...]``."""
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    return run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
