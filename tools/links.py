"""``python -m tools links``: fail on a relative link in the repository's markdown that is broken.

The docs must read correctly in the repository too (on GitHub, in an editor), not only in the
built site. Every ``[text](target)`` and ``[text]: target`` in the tracked markdown files (the
READMEs, CHANGELOGs, ``docs/`` and every package's ``docs/``) whose target is relative is checked:
the file or directory must exist, and an ``#anchor`` into a markdown file must name one of its
headings (as MkDocs and GitHub make them: lower case, punctuation dropped, spaces as ``-``).
Links to the web (``http:``, ``https:``, ``mailto:``) and links inside code are not checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CODE_BLOCK = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def markdown_files(root: Path = ROOT) -> list[Path]:
    """The markdown files git tracks (or would: untracked but not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(root / p for p in listed if (root / p).is_file())


def _text(markdown: str) -> str:
    """The markdown without code (blocks and inline), where links are not links."""
    return _INLINE_CODE.sub("", _CODE_BLOCK.sub("", markdown))


def slug(heading: str) -> str:
    """A heading's anchor, as MkDocs' toc extension and GitHub make it."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[`*_]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r"[ ]+", "-", text)


@cache
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a markdown file's headings (and explicit ``{#id}`` attributes)."""
    text = _CODE_BLOCK.sub("", path.read_text(encoding="utf-8"))
    found = set()
    for heading in _HEADING.findall(text):
        explicit = re.search(r"\{\s*#([\w-]+)\s*\}$", heading)
        found.add(explicit.group(1) if explicit else slug(heading))
    return frozenset(found)


def broken_links(path: Path) -> list[str]:
    """The broken relative links of one markdown file, as ``file:line: target (why)``."""
    raw = path.read_text(encoding="utf-8")
    text = _text(raw)
    problems = []
    for match in [*_LINK.finditer(text), *_REFERENCE.finditer(text)]:
        target = match.group(1)
        if _EXTERNAL.match(target) or target.startswith("/"):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        line = text.count("\n", 0, match.start()) + 1
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        where = f"{shown}:{line}: {target}"
        if not destination.exists():
            problems.append(f"{where} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{where} (no heading #{anchor} in {destination.name})")
    return problems


def main(argv: list[str]) -> int:
    """Print every broken relative link; exit 1 if there is one."""
    problems = [p for path in markdown_files() for p in broken_links(path)]
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} broken relative link(s)", file=sys.stderr)
        return 1
    print("no broken relative links")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
