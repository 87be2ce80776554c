"""Version arithmetic for headwater packages: SemVer, core minors, release labels, wheel versions.

The scheme (``docs/versioning.md`` explains it to users):

- ``headwater-core`` and the packages released in lockstep with it share one SemVer ``C.M.P``;
- a connector has its own SemVer ``X.Y.Z`` and is released once per supported core minor ``C.M``;
- the label people read is ``X.Y.Z-C.M`` (tags, changelogs, docs);
- ``X.Y.Z-C.M`` is not a PEP 440 version, so the wheel's version is the release ``X.Y.Z.C.M``, and
  the wheel pins ``headwater-core>=C.M,<C.(M+1)`` (and the same for the other lockstep packages).

This module owns that mapping and refuses anything else: pre-releases, build metadata, leading
zeros and missing components are errors, never guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CoreMinor", "Label", "SemVer", "VersionError"]

_NUMBER = r"(0|[1-9][0-9]*)"
_SEMVER = re.compile(rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}")
_MINOR = re.compile(rf"{_NUMBER}\.{_NUMBER}")


class VersionError(ValueError):
    """A version, core minor or label that the headwater scheme does not allow."""


@dataclass(frozen=True, order=True)
class SemVer:
    """A release version ``MAJOR.MINOR.PATCH`` (no pre-release, no build metadata)."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse ``X.Y.Z``; raise `VersionError` for anything else."""
        match = _SEMVER.fullmatch(text)
        if match is None:
            raise VersionError(
                f"invalid version {text!r}: expected MAJOR.MINOR.PATCH such as 1.4.0 "
                "(no leading zeros, pre-release or build suffix)"
            )
        major, minor, patch = (int(part) for part in match.groups())
        return cls(major, minor, patch)

    @property
    def core_minor(self) -> CoreMinor:
        """``C.M`` of this version, read as a core version ``C.M.P``."""
        return CoreMinor(self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True, order=True)
class CoreMinor:
    """A minor line ``C.M`` of headwater-core."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> CoreMinor:
        """Parse ``C.M``; raise `VersionError` for anything else."""
        match = _MINOR.fullmatch(text)
        if match is None:
            raise VersionError(f"invalid core minor {text!r}: expected MAJOR.MINOR such as 0.1")
        major, minor = (int(part) for part in match.groups())
        return cls(major, minor)

    @property
    def specifier(self) -> str:
        """The PEP 440 specifier that admits exactly this minor: ``>=C.M,<C.(M+1)``."""
        return f">={self},<{self.major}.{self.minor + 1}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class Label:
    """What a release is called: ``X.Y.Z-C.M`` for a connector, ``C.M.P`` for a lockstep package.

    ``core`` is the core minor a connector release is built for, or ``None`` for a package released
    in lockstep with core (whose own version already names its core minor).
    """

    version: SemVer
    core: CoreMinor | None = None

    @classmethod
    def parse(cls, text: str) -> Label:
        """Parse ``X.Y.Z-C.M`` or ``C.M.P``; raise `VersionError` for anything else."""
        version, sep, core = text.partition("-")
        if not sep:
            return cls(SemVer.parse(version))
        return cls(SemVer.parse(version), CoreMinor.parse(core))

    @property
    def wheel_version(self) -> str:
        """The PEP 440 version of the wheel: ``X.Y.Z.C.M``, or ``C.M.P`` for a lockstep package."""
        return str(self) if self.core is None else f"{self.version}.{self.core}"

    def tag(self, package: str) -> str:
        """The git tag of this release of ``package`` (a package directory name)."""
        return f"{package}-v{self}"

    @classmethod
    def from_tag(cls, package: str, tag: str) -> Label | None:
        """The label in ``tag`` if it is a release tag of ``package``, else ``None``."""
        prefix = f"{package}-v"
        if not tag.startswith(prefix):
            return None
        try:
            return cls.parse(tag.removeprefix(prefix))
        except VersionError:
            return None

    def __str__(self) -> str:
        return str(self.version) if self.core is None else f"{self.version}-{self.core}"
