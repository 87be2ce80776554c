"""Start server processes, recognise them again by PID, measure and stop them.

A server is started in a session of its own, so its PID is also its process-group and
session id: stopping signals the whole group, and memory is summed over the session.
A PID is only trusted together with the process's start time (``/proc/PID/stat`` field
22), so a recycled PID is never signalled.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

__all__ = [
    "ProcessId",
    "is_loopback",
    "listening_addresses",
    "session_rss",
    "spawn",
    "stop",
    "tail",
]


@dataclass(frozen=True)
class ProcessId:
    """A PID together with its start time, which together name one process for good."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """Identify the running process ``pid``; ``None`` if there is none."""
        ticks = _stat_field(pid, 22)
        return None if ticks is None else cls(pid, int(ticks))

    def alive(self) -> bool:
        """Tell whether this very process still runs (a zombie counts as gone)."""
        if _stat_field(self.pid, 3) in (None, "Z", "X"):
            return False
        return _stat_field(self.pid, 22) == str(self.start_ticks)


def _stat_field(pid: int, field: int) -> str | None:
    """Return field ``field`` (1-based, as in proc(5)) of ``/proc/PID/stat``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[field - 3] if field >= 3 else None


def spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path
) -> tuple[subprocess.Popen[bytes], ProcessId]:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``.

    stdin is ``/dev/null``. The returned :class:`subprocess.Popen` lets the caller notice an
    early exit; the :class:`ProcessId` is what gets recorded.
    """
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ident = ProcessId.of(proc.pid)
    # A process that died at once has no /proc entry left to read: record a dead identity.
    return proc, ident or ProcessId(proc.pid, -1)


def stop(process: ProcessId, *, grace: float = 15.0) -> bool:
    """Stop the process group led by ``process``: SIGTERM, then SIGKILL after ``grace`` s.

    Returns ``False`` when the process was already gone (nothing was signalled).
    """
    if not process.alive():
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not process.alive():
                return True
            time.sleep(0.05)
    return True


def _session_pids(process: ProcessId) -> list[int]:
    """The PIDs in ``process``'s session (it leads one: see :func:`spawn`)."""
    if not process.alive():
        return []
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if _stat_field(pid, 6) == str(process.pid)]


def session_rss(process: ProcessId) -> int:
    """Return the resident memory in bytes of every process in ``process``'s session."""
    total = 0
    for pid in _session_pids(process):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def listening_addresses(process: ProcessId) -> set[tuple[IPv4Address | IPv6Address, int]]:
    """Return the TCP addresses that processes of ``process``'s session listen on."""
    inodes = set()
    for pid in _session_pids(process):
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                found.add((_proc_net_address(address), int(port, 16)))
    return found


def _proc_net_address(hexed: str) -> IPv4Address | IPv6Address:
    """Decode an address of /proc/net/tcp*: 32-bit words in host (little-endian) order."""
    words = [int(hexed[i : i + 8], 16) for i in range(0, len(hexed), 8)]
    return ip_address(b"".join(struct.pack("<I", word) for word in words))


def is_loopback(address: IPv4Address | IPv6Address) -> bool:
    """Tell whether ``address`` is a loopback address, IPv4-mapped ones included."""
    mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def tail(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of a text file, or a note that it is missing."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError as exc:
        return f"(no log: {exc})\n"
