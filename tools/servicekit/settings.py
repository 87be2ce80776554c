"""Where installs, run state and data live, and how ports are chosen.

Environment variables (all optional):

- ``HEADWATER_SERVICES_CACHE``: where installs are cached; default ``<repo>/.cache/services``
  in the repository, else (the copy shipped in headwater-connector-testing)
  ``$XDG_CACHE_HOME/headwater/services`` (``~/.cache/headwater/services``).
- ``HEADWATER_SERVICES_STATE``: the state directory (PID files, ports, data-directory
  paths); default ``<cache>/run``.
- ``HEADWATER_SERVICES_FREE_PORTS=1``: pick free ports instead of the fixed defaults.
- ``HEADWATER_<NAME>_PORT`` (and ``HEADWATER_<NAME>_<PORT>_PORT`` for a service's other
  ports, e.g. ``HEADWATER_CASSANDRA_STORAGE_PORT``): override one port. An override wins
  over free-port mode.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = [
    "HOST",
    "REPO_ROOT",
    "cache_dir",
    "default_state_dir",
    "free_port",
    "free_ports_requested",
    "port_variable",
    "resolve_port",
]

#: Every server and proxy binds this address, never a public interface.
HOST = "127.0.0.1"

#: The repository holding this package (``tools/servicekit`` -> repository root), if it is there.
REPO_ROOT = Path(__file__).resolve().parents[2]

_TRUE = {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """Return the directory that holds cached installs (git-ignored in the repository)."""
    override = os.environ.get("HEADWATER_SERVICES_CACHE")
    if override:
        return Path(override).resolve()
    if (REPO_ROOT / "tools" / "services").is_file():
        return REPO_ROOT / ".cache" / "services"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "headwater" / "services"


def default_state_dir() -> Path:
    """Return the state directory named by ``HEADWATER_SERVICES_STATE`` or the default."""
    override = os.environ.get("HEADWATER_SERVICES_STATE")
    return Path(override).resolve() if override else cache_dir() / "run"


def free_ports_requested() -> bool:
    """Tell whether ``HEADWATER_SERVICES_FREE_PORTS`` asks for free-port mode."""
    return os.environ.get("HEADWATER_SERVICES_FREE_PORTS", "").strip().lower() in _TRUE


def port_variable(service: str, port_name: str) -> str:
    """Name the variable that overrides one port: the main port is called ``port``."""
    middle = "" if port_name == "port" else f"_{port_name.upper()}"
    return f"HEADWATER_{service.upper()}{middle}_PORT"


def free_port() -> int:
    """Return a TCP port on :data:`HOST` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def resolve_port(service: str, port_name: str, default: int, *, free: bool) -> int:
    """Choose one port: the environment's override, else a free one, else the default."""
    variable = port_variable(service, port_name)
    value = os.environ.get(variable)
    if value:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{variable}={value!r} is not a port number") from None
    return free_port() if free else default
