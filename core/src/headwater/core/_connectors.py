"""Connector discovery: installed connectors register a :class:`ConnectorSpec` as an entry point.

A distribution registers its connectors in the entry-point group ``headwater.connectors``::

    [project.entry-points."headwater.connectors"]
    kafka = "headwater.connectors.kafka:CONNECTOR"
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

__all__ = ["ENTRY_POINT_GROUP", "ConnectorSpec", "InstalledConnector", "installed_connectors"]

ENTRY_POINT_GROUP = "headwater.connectors"


@dataclass(frozen=True, kw_only=True)
class ConnectorSpec:
    """What a connector registers: its identifier, factories and typed options model."""

    identifier: str
    """Short name used by pipelines and the CLI (``kafka``, ``jdbc``, ``datagen``...)."""
    summary: str
    """One line on what it connects to."""
    source: Any | None
    """The source class (or factory), if the connector reads."""
    sink: Any | None
    """The sink class (or factory), if the connector writes."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The options models by role (``"source"``, ``"sink"``, ``"lookup"``...): pydantic models or
    dataclasses, for validation and the generated docs (one options table per role)."""
    distribution: str
    """The distribution that ships the connector (for its version and core compatibility)."""
    pipeline_source: Callable[[Any], Any] | None = None
    """Builds the source of a pipeline file's ``[source]`` table (a
    :class:`~headwater.core.PipelineEndpoint`); ``None`` if the connector cannot be one."""
    pipeline_sink: Callable[[Any], Any] | None = None
    """Builds the sink of a pipeline file's ``[sink]`` table; ``None`` if it cannot be one."""


@dataclass(frozen=True)
class InstalledConnector:
    """A discovered connector with its version and whether it fits the installed core."""

    identifier: str
    distribution: str
    version: str
    compatible: bool
    requirement: str | None
    spec: ConnectorSpec | None
    error: str | None = None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a[: len(b)] == b,
    "!=": lambda a, b: a[: len(b)] != b,
}


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets a comma-separated specifier such as ``>=0.1,<0.2``."""
    current = _version_tuple(version)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        match = re.match(r"(>=|<=|==|!=|>|<)\s*([\w.]+)", clause)
        if match is None:
            return False
        op, bound = match.groups()
        width = max(len(current), len(_version_tuple(bound)))
        a = current + (0,) * (width - len(current))
        b = _version_tuple(bound)
        if op not in ("==", "!="):
            b = b + (0,) * (width - len(b))
        if not _OPS[op](a, b):
            return False
    return True


def _core_requirement(distribution: str) -> str | None:
    for requirement in metadata.requires(distribution) or []:
        match = re.match(r"headwater-core\s*\(?([^;)]*)\)?", requirement)
        if match and not requirement.startswith("headwater-core-"):
            return match.group(1).strip()
    return None


def installed_connectors() -> list[InstalledConnector]:
    """Every connector registered in the ``headwater.connectors`` entry-point group."""
    core_version = metadata.version("headwater-core")
    found = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry.dist.name if entry.dist is not None else "unknown"
        version = entry.dist.version if entry.dist is not None else "unknown"
        requirement = None if distribution == "headwater-core" else _core_requirement(distribution)
        compatible = requirement is None or satisfies(core_version, requirement)
        try:
            spec = entry.load()
            error = None
        except Exception as exc:  # a broken plugin must not break the listing
            spec, error = None, f"{type(exc).__name__}: {exc}"
        found.append(
            InstalledConnector(
                entry.name, distribution, version, compatible, requirement, spec, error
            )
        )
    return sorted(found, key=lambda c: c.identifier)
