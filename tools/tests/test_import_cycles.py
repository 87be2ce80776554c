"""The import-cycle check (tools/import_cycles.py) on small source trees, and on the workspace."""

from __future__ import annotations

from pathlib import Path

from tools import import_cycles


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


def test_a_cycle_through_module_level_imports_is_found(tmp_path: Path) -> None:
    src = tree(
        tmp_path,
        {
            "headwater/pkg/__init__.py": "from headwater.pkg._a import A\n",
            "headwater/pkg/_a.py": "from ._b import B\nclass A: ...\n",
            "headwater/pkg/_b.py": "try:\n    from headwater.pkg import _c\nexcept ImportError:\n    pass\nB = 1\n",
            "headwater/pkg/_c.py": "class C:\n    from headwater.pkg._a import A\n",
        },
    )
    assert import_cycles.cycles(import_cycles.graph([src])) == [
        ["headwater.pkg._a", "headwater.pkg._b", "headwater.pkg._c"]
    ]
    assert import_cycles.main([str(src)]) == 1


def test_imports_in_functions_and_under_type_checking_break_cycles(tmp_path: Path) -> None:
    src = tree(
        tmp_path,
        {
            "headwater/pkg/__init__.py": "",
            "headwater/pkg/_a.py": "import headwater.pkg._b\n",
            "headwater/pkg/_b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from headwater.pkg._a import A\n"
                "def later():\n    from headwater.pkg import _a\n"
            ),
        },
    )
    edges = import_cycles.graph([src])
    assert edges["headwater.pkg._a"] == {"headwater.pkg._b"}
    assert edges["headwater.pkg._b"] == set()
    assert import_cycles.main([str(src)]) == 0


def test_the_workspace_has_no_import_cycles() -> None:
    assert import_cycles.main([]) == 0
