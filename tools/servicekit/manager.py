"""``up``, ``down``, ``status``, ``env`` and ``logs`` over one state directory.

A state directory holds one ``<service>.json`` record per service that is up (ports,
published variables, PID and start time, data directory, log file), a lock file per
service, and optionally ``owner.json``: the process the directory belongs to. A test
session keeps its servers in a state directory of its own below the default one, so
that ``down --all`` on the default directory stops them once that owner has exited,
and leaves a still-running session alone.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from .errors import ServiceError
from .installers import ensure_debian_packages, ensure_installed
from .probes import ProbeError
from .processes import (
    ProcessId,
    is_loopback,
    listening_addresses,
    session_rss,
    spawn,
    stop,
    tail,
)
from .registry import (
    SERVICES,
    LaunchContext,
    ManagedService,
    Service,
    SystemService,
    get,
)
from .settings import HOST, cache_dir

__all__ = ["Record", "StateDir", "Status"]

Report = Callable[[str], None]
_T = TypeVar("_T")

_LOG_LINES_IN_ERRORS = 30


@dataclass(frozen=True)
class Record:
    """What the state directory remembers about one service that is up."""

    service: str
    ports: dict[str, int]
    env: dict[str, str]
    started_at: str
    pid: int | None = None
    start_ticks: int | None = None
    data_dir: str | None = None
    log: str | None = None

    @property
    def process(self) -> ProcessId | None:
        """The server process we started, or ``None`` for a system service."""
        if self.pid is None or self.start_ticks is None:
            return None
        return ProcessId(self.pid, self.start_ticks)


@dataclass(frozen=True)
class Status:
    """One line of ``status``: ``state`` is ``up``, ``down``, ``dead`` or ``shared``."""

    service: str
    state: str
    address: str = ""
    pid: int | None = None
    rss_bytes: int | None = None


class StateDir:
    """The services recorded in one state directory, and the operations on them."""

    def __init__(self, path: Path, *, report: Report = lambda message: None) -> None:
        self.path = path
        self._report = report

    # --- records and locks ---------------------------------------------------------------

    def _record_path(self, name: str) -> Path:
        return self.path / f"{name}.json"

    def load(self, name: str) -> Record | None:
        """Return the record of ``name``, or ``None`` when it is not up here."""
        try:
            data = json.loads(self._record_path(name).read_text())
        except FileNotFoundError:
            return None
        return Record(**data)

    def _save(self, record: Record) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self._record_path(record.service)
        scratch = target.with_suffix(".tmp")
        scratch.write_text(json.dumps(asdict(record), indent=2))
        scratch.replace(target)

    def recorded(self) -> list[str]:
        """Names of the services recorded here, in registry order."""
        return [name for name in SERVICES if self._record_path(name).exists()]

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / f"{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def claim(self, owner: ProcessId) -> None:
        """Record that this state directory belongs to the process ``owner``."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "owner.json").write_text(json.dumps(asdict(owner)))

    def _owner(self) -> ProcessId | None:
        try:
            return ProcessId(**json.loads((self.path / "owner.json").read_text()))
        except FileNotFoundError:
            return None

    # --- up ---------------------------------------------------------------------------

    def up(self, names: Sequence[str], *, free_ports: bool) -> list[Record]:
        """Bring every named service up (concurrently); raise if any of them failed."""
        return _each(names, lambda service: self._up_one(service, free_ports))

    def _up_one(self, service: Service, free_ports: bool) -> Record:
        started = time.monotonic()
        with self._locked(service.name):
            record = self._reuse(service)
            if record is None:
                if isinstance(service, ManagedService):
                    record = self._start_managed(service, free_ports)
                else:
                    assert isinstance(service, SystemService)
                    record = self._use_system(service)
                self._report(
                    f"{service.name}: up on {HOST}:{record.ports['port']} "
                    f"in {time.monotonic() - started:.1f} s"
                )
            else:
                self._report(f"{service.name}: already up on {HOST}:{record.ports['port']}")
            return record

    def _reuse(self, service: Service) -> Record | None:
        """Return the existing record if its server still answers; forget a dead one."""
        record = self.load(service.name)
        if record is None:
            return None
        process = record.process
        if process is None or process.alive():
            try:
                service.probe(HOST, record.ports)
            except (OSError, ProbeError):
                pass
            else:
                return record
        self._report(f"{service.name}: the recorded server does not answer; starting afresh")
        self._forget(record)
        return None

    def _start_managed(self, service: ManagedService, free_ports: bool) -> Record:
        installs = [ensure_installed(installer) for installer in service.installs]
        ports = service.choose_ports(free=free_ports)
        data_dir = Path(tempfile.mkdtemp(prefix=f"headwater-{service.name}-"))
        log = data_dir / "server.log"
        try:
            launch = service.launch(LaunchContext(ports, data_dir, installs))
            env = {**_inherited_env(), **launch.env}
            popen, process = spawn(launch.argv, cwd=data_dir, env=env, log_path=log)
        except (OSError, ServiceError) as exc:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise ServiceError(f"could not start: {exc}") from exc
        record = Record(
            service=service.name,
            ports=ports,
            env=service.variables(ports),
            started_at=_now(),
            pid=process.pid,
            start_ticks=process.start_ticks,
            data_dir=str(data_dir),
            log=str(log),
        )
        self._save(record)  # before waiting, so that `down` can stop a slow starter
        try:
            self._wait(service, ports, log, exited=popen.poll)
            _check_loopback_only(process)
        except ServiceError:
            self._forget(record)
            raise
        return record

    def _use_system(self, service: SystemService) -> Record:
        ports = service.choose_ports(free=False)  # the machine's server has its own port
        try:
            service.probe(HOST, ports)
        except (OSError, ProbeError):
            self._start_system(service, ports)
        record = Record(
            service=service.name, ports=ports, env=service.variables(ports), started_at=_now()
        )
        self._save(record)
        return record

    def _start_system(self, service: SystemService, ports: dict[str, int]) -> None:
        log = cache_dir() / "logs" / f"system-{service.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if not Path(service.installed).exists():
            self._report(f"{service.name}: installing Debian packages {service.packages}")
            ensure_debian_packages(service.packages, log)
        argv = list(service.start())
        self._report(f"{service.name}: not answering on port {ports['port']}; running {argv[0]}")
        with log.open("ab") as out:
            try:
                subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=120, check=True
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise ServiceError(
                    "could not start the system server with "
                    f"{' '.join(argv)}: {exc}\n{tail(log, _LOG_LINES_IN_ERRORS)}"
                ) from exc
        self._wait(service, ports, log, exited=lambda: None)

    def _wait(
        self,
        service: Service,
        ports: dict[str, int],
        log: Path,
        *,
        exited: Callable[[], int | None],
    ) -> None:
        """Probe until the server answers; fail on exit or timeout with the log's tail."""
        deadline = time.monotonic() + service.startup_timeout
        delay = 0.05
        last: Exception | None = None
        while True:
            code = exited()
            if code is not None:
                problem = f"exited with code {code} before answering"
                break
            try:
                service.probe(HOST, ports)
            except (OSError, ProbeError) as exc:
                last = exc
            else:
                return
            if time.monotonic() > deadline:
                problem = (
                    f"did not answer on {HOST}:{ports['port']} within "
                    f"{service.startup_timeout:.0f} s (last: {type(last).__name__}: {last})"
                )
                break
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise ServiceError(
            f"{problem}\n--- last lines of {log} ---\n{tail(log, _LOG_LINES_IN_ERRORS)}".rstrip()
        )

    # --- down ---------------------------------------------------------------------------

    def down(self, names: Sequence[str]) -> None:
        """Stop the named services we started and forget them; shared ones keep running."""
        _each(names, self._down_one)

    def _down_one(self, service: Service) -> None:
        with self._locked(service.name):
            record = self.load(service.name)
            if record is None:
                self._report(f"{service.name}: not up")
                return
            self._forget(record)
            kept = " (a shared system server: left running)" if record.pid is None else ""
            self._report(f"{service.name}: down{kept}")

    def down_all(self) -> None:
        """Stop everything here, and in session directories below whose owner has exited."""
        self.down(self.recorded())
        for child in sorted(p for p in self.path.glob("*/") if (p / "owner.json").exists()):
            session = StateDir(child, report=self._report)
            owner = session._owner()
            if owner is not None and owner.alive():
                self._report(f"{child.name}: its owner (PID {owner.pid}) still runs; left alone")
                continue
            session.down(session.recorded())
            shutil.rmtree(child, ignore_errors=True)

    def _forget(self, record: Record) -> None:
        process = record.process
        if process is not None:
            stop(process)
        if record.data_dir:
            shutil.rmtree(record.data_dir, ignore_errors=True)
        self._record_path(record.service).unlink(missing_ok=True)

    # --- status, env, logs ---------------------------------------------------------------

    def status(self) -> list[Status]:
        """Describe every known service as this state directory sees it."""
        rows = []
        for name, service in SERVICES.items():
            record = self.load(name)
            process = record.process if record else None
            if record is None:
                rows.append(Status(name, "down"))
            elif process is None:
                rows.append(Status(name, "shared", _masked_address(service, record)))
            else:
                alive = process.alive()
                rows.append(
                    Status(
                        name,
                        "up" if alive else "dead",
                        _masked_address(service, record),
                        process.pid,
                        session_rss(process) if alive else None,
                    )
                )
        return rows

    def env(self, name: str) -> dict[str, str]:
        """Return the connection variables of ``name``; fail if it is not up here."""
        get(name)
        record = self.load(name)
        if record is None:
            raise ServiceError(f"{name} is not up here ({self.path}): run tools/services up {name}")
        return record.env

    def log_tail(self, name: str, lines: int) -> str:
        """Return the last ``lines`` lines of the server's log."""
        service = get(name)
        if isinstance(service, SystemService):
            candidates = [Path(p) for pattern in service.logs for p in glob.glob(pattern)]
            if not candidates:
                raise ServiceError(f"{name}: no log file matches {list(service.logs)}")
            path = max(candidates, key=lambda p: p.stat().st_mtime)
        else:
            record = self.load(name)
            if record is None or record.log is None:
                raise ServiceError(f"{name} is not up here ({self.path})")
            path = Path(record.log)
        return f"==> {path} <==\n{tail(path, lines)}"


def _each(names: Sequence[str], action: Callable[[Service], _T]) -> list[_T]:
    """Run ``action`` for every named service at once; raise one error naming each failure."""
    services = [get(name) for name in dict.fromkeys(names)]
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        futures = [pool.submit(action, service) for service in services]
    failures = [
        f"{service.name}: {_describe(error)}"
        for service, future in zip(services, futures, strict=True)
        if (error := future.exception()) is not None
    ]
    if failures:
        raise ServiceError("\n\n".join(failures))
    return [future.result() for future in futures]


def _check_loopback_only(process: ProcessId) -> None:
    """Fail if the server listens anywhere but on a loopback address."""
    exposed = sorted(
        f"{address}:{port}"
        for address, port in listening_addresses(process)
        if not is_loopback(address)
    )
    if exposed:
        raise ServiceError(f"listens beyond loopback, on {', '.join(exposed)}: stopped")


def _describe(exc: BaseException) -> str:
    """A failure's message; unexpected errors also name their type."""
    return str(exc) if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"


def _inherited_env() -> dict[str, str]:
    """The environment servers start with: ours, minus our own settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}


def _masked_address(service: Service, record: Record) -> str:
    """The address variable's value with any password replaced by ``***``."""
    value = record.env.get(service.address[0], "")
    parts = urlsplit(value)
    if parts.password:
        return value.replace(f":{parts.password}@", ":***@", 1)
    return value


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
