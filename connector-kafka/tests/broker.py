"""A Kafka broker (noida-db) of one test's own, which the test can stop and start again.

Started through ``tools/servicekit`` (the same install, command line and readiness probe as
``tools/services``) on a free port with its own data directory, so stopping it does not disturb
the session's shared broker.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from headwater.connectors.testing.pytest_plugin import ServicesRunner


class RestartableBroker:
    """One noida-db process at a time on a fixed port and data directory.

    ``stop()`` ends it gracefully (SIGTERM: noida-db snapshots its data directory), ``start()``
    brings it back on the same port with the same data, so clients see a real outage: refused
    connections while it is down, the same broker afterwards.
    """

    def __init__(self, services: ServicesRunner, data_dir: Path) -> None:
        registry = services.servicekit("registry")
        installers = services.servicekit("installers")
        self._settings = services.servicekit("settings")
        self._processes = services.servicekit("processes")
        self._service: Any = registry.get("kafka")
        installs = [installers.ensure_installed(i) for i in self._service.installs]
        self._ports = {"port": self._settings.free_port()}
        self._data_dir = data_dir
        self._launch: Any = self._service.launch(
            registry.LaunchContext(self._ports, data_dir, installs)
        )
        self._process: Any = None
        self.address = f"{self._settings.HOST}:{self._ports['port']}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the broker and wait until it answers a Kafka ApiVersions request."""
        popen, self._process = self._processes.spawn(
            self._launch.argv,
            cwd=self._data_dir,
            env={**os.environ, **self._launch.env},
            log_path=self._data_dir / "server.log",
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._service.probe(self._settings.HOST, self._ports)
                return
            except Exception:
                if popen.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the broker gracefully (SIGTERM; it saves its data) and wait until it is gone."""
        if self._process is not None:
            self._processes.stop(self._process)
            self._process = None

    def freeze(self) -> None:
        """Suspend the broker (SIGSTOP): connections stay open, nothing is answered."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Resume a frozen broker (SIGCONT)."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGCONT)
