"""Connector discovery: installed connectors register a :class:`ConnectorSpec` as an entry point.

A distribution registers its connectors in the entry-point group ``headwater.connectors``::

    [project.entry-points."headwater.connectors"]
    kafka = "headwater.connectors.kafka:CONNECTOR"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

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


_CORE = canonicalize_name("headwater-core")


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets a PEP 440 specifier such as ``>=0.1,<0.2`` or ``~=0.1.0``.

    Versions compare as PEP 440 says: ``0.1.0rc1`` comes before ``0.1`` (it does not meet
    ``>=0.1``), and a pre-release is not refused for being one (``0.2.0rc1`` meets ``>=0.1``). An
    invalid version or specifier meets nothing.
    """
    try:
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False


def _core_requirement(distribution: str) -> str | None:
    """The specifier of ``distribution``'s requirement on headwater-core (extras allowed)."""
    for line in metadata.requires(distribution) or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != _CORE:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # needed only with one of the distribution's extras
        return str(requirement.specifier)
    return None


def installed_connectors() -> list[InstalledConnector]:
    """Every connector registered in the ``headwater.connectors`` entry-point group."""
    core_version = metadata.version("headwater-core")
    found = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry.dist.name if entry.dist is not None else "unknown"
        version = entry.dist.version if entry.dist is not None else "unknown"
        requirement = (
            None if canonicalize_name(distribution) == _CORE else _core_requirement(distribution)
        )
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
