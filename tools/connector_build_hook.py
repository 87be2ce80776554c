"""The hatch metadata hook that makes every build of a connector its release artifact.

Each connector directory links this file as ``headwater_build.py`` (its hatch custom metadata hook) and
lists ``version`` and ``dependencies`` as dynamic. Whatever builds the package -- ``hatch build``,
``python -m build``, ``pip wheel .``, an editable install or ``python -m tools release build`` -- the
hook sets

- the version to ``X.Y.Z.C.M``: the connector's own ``X.Y.Z`` (its version file) for the core
  minor ``C.M`` of the build, and
- the dependencies (and optional dependencies, where the hook's table has them) to those of
  ``[tool.hatch.metadata.hooks.custom]``, in which the packages released in lockstep with core
  (headwater-core, headwater-connector-base, ...) are written without a version and pinned here
  to ``>=C.M,<C.(M+1)``.

The core minor is the workspace's current one, or ``HEADWATER_CORE_MINOR=C.M`` for another one
that ``compatibility.toml`` lists for the connector; any other is refused, naming those it lists.

An sdist carries this file and its final metadata in ``PKG-INFO``: a wheel built from the sdist
takes version and dependencies from there (hatchling does) and never needs the workspace.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

_WORKSPACE_MARKER = "compatibility.toml"
REQUIREMENT_KEYS = ("dependencies", "optional-dependencies")
"""The hook's tables of requirements, each listed in ``project.dynamic``."""


class ConnectorMetadataHook(MetadataHookInterface):
    """Set a connector's release version and lockstep pins for the core minor of the build."""

    PLUGIN_NAME = "custom"

    def update(self, metadata: dict[str, Any]) -> None:
        """Fill in ``version`` and the requirements (each listed in ``project.dynamic``)."""
        root = _workspace_root(Path(self.root))
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))  # the workspace's own tools, not an installed package
        from tools.connector_release import CORE_MINOR_VARIABLE, release_metadata

        version, requirements = release_metadata(
            root,
            Path(self.root).name,
            written_version=str(metadata.get("version", "")),
            requirements={key: self.config[key] for key in REQUIREMENT_KEYS if key in self.config},
            core_minor=os.environ.get(CORE_MINOR_VARIABLE),
        )
        metadata["version"] = version
        metadata.update(requirements)


def _workspace_root(start: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / _WORKSPACE_MARKER).is_file():
            return directory
    raise RuntimeError(
        f"{start.name}: no {_WORKSPACE_MARKER} above {start}; a headwater connector is built from "
        "its workspace (the repository) or from an sdist made there"
    )


def get_metadata_hook() -> type[MetadataHookInterface]:
    """The hook class, for hatchling's loader of ``hatch_build.py``."""
    return ConnectorMetadataHook
