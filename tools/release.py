"""``python -m tools release``: list versions, build, check and tag package releases.

    python -m tools release versions [--json]
    python -m tools release build PACKAGE [--core C.M ...] [--outdir DIR]
    python -m tools release check [PACKAGE ...]
    python -m tools release tag PACKAGE

PACKAGE is a package directory (``core``, ``connector-kafka``). A release of a connector at version
``X.Y.Z`` is labelled ``X.Y.Z-C.M`` for each core minor ``C.M`` that ``compatibility.toml`` lists
for it, built as wheels ``X.Y.Z.C.M`` and tagged ``<package>-v<label>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools import gitrepo, release_build, release_check
from tools.versioning import CoreMinor, VersionError
from tools.workspace import REPOSITORY, Workspace, WorkspaceError, load

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Run one release command; return the process exit code."""
    args = _parser().parse_args(argv)
    try:
        workspace = load(args.root)
        return int(args.command(workspace, args))
    except (
        WorkspaceError,
        VersionError,
        release_build.BuildError,
        gitrepo.GitError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _versions(workspace: Workspace, args: argparse.Namespace) -> int:
    if args.json:
        rows = [
            {
                "package": p.name,
                "distribution": p.distribution,
                "kind": str(p.kind),
                "version": str(p.version),
                "core_minors": [str(m) for m in p.core_minors],
                "labels": [str(label) for label in p.labels],
                "wheel_versions": [label.wheel_version for label in p.labels],
            }
            for p in workspace.packages
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = [("package", "version", "kind", "core minors", "labels")]
    table += [
        (
            p.name,
            str(p.version),
            str(p.kind),
            ", ".join(str(m) for m in p.core_minors),
            ", ".join(str(label) for label in p.labels),
        )
        for p in workspace.packages
    ]
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _build(workspace: Workspace, args: argparse.Namespace) -> int:
    package = workspace.package(args.package)
    minors = [CoreMinor.parse(text) for text in args.core]
    outdir = args.outdir or workspace.root / "dist"
    for artifact in release_build.build(workspace, package, outdir, minors or None):
        print(artifact)
    return 0


def _check(workspace: Workspace, args: argparse.Namespace) -> int:
    names = args.packages or [p.name for p in workspace.packages]
    failed = 0
    for name in names:
        package = workspace.package(name)
        found = release_check.problems(workspace, package)
        for problem in found:
            print(f"{package.name}: {problem}")
        failed += bool(found)
    if failed:
        print(f"{failed} of {len(names)} package(s) not ready to release", file=sys.stderr)
        return 1
    print(f"{len(names)} package(s) ready to release")
    return 0


def _tag(workspace: Workspace, args: argparse.Namespace) -> int:
    package = workspace.package(args.package)
    found = release_check.problems(workspace, package)
    if not gitrepo.is_clean(workspace.root, package.path):
        found.append(f"{package.name}/ has uncommitted changes; the tag would not contain them")
    if found:
        for problem in found:
            print(f"{package.name}: {problem}", file=sys.stderr)
        return 1
    for label in package.labels:
        tag = label.tag(package.name)
        gitrepo.create_tag(workspace.root, tag, f"{package.distribution} {label}")
        print(tag)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools release",
        description="Versions, builds, checks and tags of headwater package releases.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=REPOSITORY,
        help="the workspace (the directory with compatibility.toml); default: this repository",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    versions = commands.add_parser(
        "versions", help="every package with its version, labels and core minors"
    )
    versions.add_argument("--json", action="store_true", help="print JSON")
    versions.set_defaults(command=_versions)

    build = commands.add_parser(
        "build", help="the sdist and wheel for each supported core minor, into --outdir"
    )
    build.add_argument("package")
    build.add_argument(
        "--core",
        action="append",
        default=[],
        metavar="C.M",
        help="build only for this core minor (repeatable); default: every supported minor",
    )
    build.add_argument("--outdir", type=Path, help="default: dist/ in the workspace")
    build.set_defaults(command=_build)

    check = commands.add_parser("check", help="refuse what must not be released")
    check.add_argument("packages", nargs="*", metavar="PACKAGE", help="default: every package")
    check.set_defaults(command=_check)

    tag = commands.add_parser(
        "tag", help="check, then create the tag <package>-v<label> for every label"
    )
    tag.add_argument("package")
    tag.set_defaults(command=_tag)
    return parser
