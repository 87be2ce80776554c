"""Cached installs of server software from PyPI and npm, and of Debian's packages.

Each install goes to ``<cache>/installs/<key>`` where the key names the package, its
version and a hash of everything that shapes the result, so a changed recipe installs
afresh and an unchanged one is reused. An install is built in a temporary sibling
directory and renamed into place when complete, under a file lock, so concurrent runs
neither repeat nor see half of it. Each install's output goes to ``<cache>/logs/<key>.log``
and its tail is part of the error when it fails.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ServiceError
from .processes import tail
from .settings import cache_dir

__all__ = [
    "Installer",
    "JavaClasses",
    "NpmPackage",
    "NpmTarball",
    "PipPackages",
    "ensure_debian_packages",
    "ensure_installed",
    "java_classpath",
]

_INSTALL_TIMEOUT = 900.0


class Installer(ABC):
    """One cached install. Subclasses say what to fetch and how to lay it out."""

    @property
    @abstractmethod
    def key(self) -> str:
        """Name the cache directory: readable, and different for a different result."""

    @abstractmethod
    def install(self, dest: Path, log: Path) -> None:
        """Fill the empty directory ``dest``, appending tool output to ``log``."""

    def _digest(self, *parts: object) -> str:
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]


def _run(argv: Sequence[str], log: Path) -> None:
    """Run one install step, output appended to ``log``; raise with its tail on failure."""
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            code = subprocess.call(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=_INSTALL_TIMEOUT,
            )
        except FileNotFoundError:
            message = f"{argv[0]} is not installed (needed for: {' '.join(argv)})"
            raise ServiceError(message) from None
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0:
        raise ServiceError(
            f"install step failed with exit code {code}: {' '.join(argv)}\n"
            f"--- last lines of {log} ---\n{tail(log, 25)}"
        )


@dataclass(frozen=True)
class PipPackages(Installer):
    """Requirements installed with ``python -m pip install --target``.

    ``for_interpreter`` adds the running interpreter's version to the key: needed when the
    install holds compiled extension modules that this interpreter will import (moto),
    not when it only carries a server binary.
    """

    name: str
    requirements: tuple[str, ...]
    for_interpreter: bool = False

    @property
    def key(self) -> str:
        python = f"-cp{sys.version_info.major}{sys.version_info.minor}"
        suffix = python if self.for_interpreter else ""
        return f"pip-{self.name}-{self._digest(self.requirements)}{suffix}"

    def install(self, dest: Path, log: Path) -> None:
        if importlib.util.find_spec("pip") is None:
            raise ServiceError(
                f"{sys.executable} has no pip module: install python3-pip, or run "
                "tools/services with the project's .venv/bin/python"
            )
        argv = [sys.executable, "-m", "pip", "install", "--target", str(dest)]
        flags = ["--disable-pip-version-check", "--no-input", "--no-warn-conflicts", "-q"]
        _run([*argv, *flags, *self.requirements], log)


@dataclass(frozen=True)
class NpmPackage(Installer):
    """An npm package installed (without install scripts) into ``<dest>/node_modules``."""

    spec: str

    @property
    def key(self) -> str:
        return f"npm-{self.spec.replace('@', '-').strip('-')}"

    def install(self, dest: Path, log: Path) -> None:
        flags = ["--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
        _run(["npm", "install", "--prefix", str(dest), *flags, self.spec], log)


@dataclass(frozen=True)
class NpmTarball(Installer):
    """One directory out of an npm package's tarball, used as a plain file distribution.

    ``subdir`` is the directory inside the tarball to keep (its contents become the
    install); top-level entries of it named in ``drop`` are left out.
    """

    spec: str
    subdir: str
    drop: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        name = self.spec.replace("@", "-").strip("-")
        return f"npmtar-{name}-{self._digest(self.subdir, self.drop)}"

    def install(self, dest: Path, log: Path) -> None:
        with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
            _run(["npm", "pack", "--loglevel=error", "--pack-destination", scratch, self.spec], log)
            (archive,) = Path(scratch).glob("*.tgz")
            prefix = self.subdir.rstrip("/") + "/"
            with tarfile.open(archive) as tar:
                members = []
                for member in tar.getmembers():
                    if not member.name.startswith(prefix):
                        continue
                    relative = member.name[len(prefix) :]
                    if relative.split("/", 1)[0] in self.drop:
                        continue
                    member.name = relative
                    members.append(_checked(member))
                # The "data" filter exists from Python 3.11.4 on; _checked covers older ones.
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(dest, members=members, filter="data")
                else:
                    tar.extractall(dest, members=members)


def _checked(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Refuse tarball entries that would land outside the install directory."""
    parts = Path(member.name).parts
    if member.name.startswith("/") or ".." in parts or member.issym() or member.islnk():
        raise ServiceError(f"refusing to extract {member.name!r}: it leaves the install")
    return member


@dataclass(frozen=True)
class JavaClasses(Installer):
    """Java sources compiled with ``javac`` against jars of another install.

    ``classpath`` holds glob patterns relative to ``base``'s install directory.
    """

    name: str
    sources: tuple[Path, ...]
    base: Installer
    classpath: tuple[str, ...]

    @property
    def key(self) -> str:
        contents = tuple(source.read_bytes() for source in self.sources)
        return f"javac-{self.name}-{self._digest(contents, self.base.key, self.classpath)}"

    def install(self, dest: Path, log: Path) -> None:
        jars = java_classpath(ensure_installed(self.base), self.classpath)
        _run(["javac", "-d", str(dest), "-cp", jars, *map(str, self.sources)], log)


def java_classpath(root: Path, patterns: Sequence[str]) -> str:
    """Join every file under ``root`` matching ``patterns`` (in order) into a class path."""
    found = [str(path) for pattern in patterns for path in sorted(root.glob(pattern))]
    if not found:
        raise ServiceError(f"no files match {list(patterns)} under {root}")
    return os.pathsep.join(found)


_KEY_LOCKS_GUARD = threading.Lock()
_KEY_LOCKS: dict[str, threading.Lock] = {}


def _key_lock(key: str) -> threading.Lock:
    """The in-process lock for ``key``: threads of one ``up`` share the file lock's process."""
    with _KEY_LOCKS_GUARD:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def ensure_installed(installer: Installer) -> Path:
    """Return the install directory of ``installer``, installing it first if needed."""
    root = cache_dir() / "installs"
    dest = root / installer.key
    if dest.is_dir():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    (cache_dir() / "logs").mkdir(exist_ok=True)
    log = cache_dir() / "logs" / f"{installer.key}.log"
    locks = cache_dir() / "locks"
    locks.mkdir(exist_ok=True)
    with _key_lock(installer.key), (locks / f"{installer.key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.is_dir():  # another process finished it while we waited
            return dest
        scratch = Path(tempfile.mkdtemp(prefix=f".{installer.key}.", dir=root))
        try:
            installer.install(scratch, log)
            scratch.rename(dest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return dest


def ensure_debian_packages(packages: Sequence[str], log: Path) -> None:
    """Install Debian packages with apt-get; only root can, anyone else gets told how."""
    if os.geteuid() != 0:
        raise ServiceError(
            f"the Debian packages {', '.join(packages)} are missing and only root can "
            f"install them: run `sudo apt-get install -y {' '.join(packages)}`"
        )
    env_argv = ["env", "DEBIAN_FRONTEND=noninteractive"]
    with _key_lock("apt"):
        _run([*env_argv, "apt-get", "update", "-q"], log)
        _run([*env_argv, "apt-get", "install", "-y", "-q", *packages], log)
