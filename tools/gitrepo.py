"""The git operations the release tool and nox need: release tags and files at a tag."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from tools.versioning import CoreMinor, Label

__all__ = ["GitError", "create_tag", "export", "is_clean", "latest_core_tag", "release_labels"]


class GitError(Exception):
    """A git command failed; the message carries git's own error output."""


def _git(root: Path, *args: str) -> bytes:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args)} failed: {message}")
    return result.stdout


def release_labels(root: Path, package: str) -> list[Label]:
    """The labels of every release tag ``<package>-v<label>``, oldest version first."""
    tags = _git(root, "tag", "--list", f"{package}-v*").decode().split()
    labels = [label for tag in tags if (label := Label.from_tag(package, tag)) is not None]
    return sorted(labels, key=lambda label: (label.version, label.core or label.version.core_minor))


def latest_core_tag(root: Path, core_package: str, minor: CoreMinor) -> str:
    """The tag of the newest release ``C.M.P`` of core within ``minor``."""
    releases = [
        label for label in release_labels(root, core_package) if label.version.core_minor == minor
    ]
    if not releases:
        raise GitError(f"no tag {core_package}-v{minor}.<patch> to build core {minor} from")
    return releases[-1].tag(core_package)


def export(root: Path, ref: str, paths: list[str], dest: Path) -> None:
    """Write ``paths`` (relative to the repository root) as of ``ref`` under ``dest``."""
    archive = _git(root, "archive", "--format=tar", ref, "--", *paths)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def is_clean(root: Path, path: Path) -> bool:
    """Whether ``path`` has no uncommitted or untracked changes."""
    return not _git(root, "status", "--porcelain", "--", str(path)).strip()


def create_tag(root: Path, tag: str, message: str) -> None:
    """Create the annotated tag ``tag`` at ``HEAD``; git refuses one that exists."""
    _git(root, "tag", "--annotate", "--message", message, tag)
