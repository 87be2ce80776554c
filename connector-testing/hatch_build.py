"""Ship the workspace's ``tools/servicekit`` in the wheel as ``headwater.connectors.testing.servicekit``.

Outside the repository, the pytest plugin manages test servers with this copy. The sdist carries
the package itself (``servicekit/`` beside this file); a build in the repository takes it from
``../tools/servicekit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ServicekitHook(BuildHookInterface):
    """Force-include servicekit (its sources, no caches) into the wheel."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Add servicekit's files to the wheel's forced includes.

        Not to an editable install: in the repository the plugin uses ``tools/services``.
        """
        if version == "editable":
            return
        root = Path(self.root)
        for package in (root / "servicekit", root.parent / "tools" / "servicekit"):
            if (package / "__init__.py").is_file():
                break
        else:
            raise RuntimeError(f"servicekit not found beside {root} or in ../tools")
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                target = "headwater/connectors/testing/servicekit/"
                build_data["force_include"][str(path)] = (
                    target + path.relative_to(package).as_posix()
                )
