"""The docs' examples run as written: each page's headwater code blocks, in order, in one namespace.

A block runs when it is a ``python`` block without a title or titled ``headwater`` (blocks titled
after another framework are for comparison). The README's pipeline example runs in
connector-kafka's tests (``test_readme_pipeline.py``), against the test broker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.M | re.S)
PAGES = ["README.md", "docs/from-other-frameworks.md"]


def blocks(page: Path) -> list[str]:
    found = []
    for match in _BLOCK.finditer(page.read_text(encoding="utf-8")):
        title = re.search(r'title="([^"]*)"', match.group("info"))
        if title is None or title.group(1) == "headwater":
            found.append(match.group("code"))
    return found


@pytest.mark.parametrize("page", PAGES)
def test_the_pages_headwater_examples_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # examples may write checkpoints next to them
    code = blocks(ROOT / page)
    assert code, f"{page} has headwater examples"
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for index, block in enumerate(code):
        exec(compile(block, f"{page} block {index + 1}", "exec"), namespace)
