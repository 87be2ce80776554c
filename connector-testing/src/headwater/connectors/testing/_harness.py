"""Run a job in a subprocess and kill it (SIGKILL) at random moments, restarting from its checkpoints."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from headwater.core.testing import KillReport, kill_after_checkpoints, kill_repeatedly

__all__ = ["KillReport", "run_with_kills"]


def _command(
    target: str, checkpoint_dir: Path, parallelism: int, params: Mapping[str, str]
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "headwater.connectors.testing.jobrunner",
        target,
        "--checkpoint-dir",
        str(checkpoint_dir),
        "--parallelism",
        str(parallelism),
    ]
    for key, value in params.items():
        command += ["--param", f"{key}={value}"]
    return command


def run_with_kills(
    target: str,
    *,
    checkpoint_dir: Path,
    parallelism: int = 1,
    restart_parallelism: int | None = None,
    params: Mapping[str, str] | None = None,
    kills: int = 5,
    min_uptime: float = 0.5,
    max_uptime: float = 1.5,
    timeout: float = 60.0,
    seed: int | None = None,
    after_checkpoints: tuple[int, int] | None = None,
) -> KillReport:
    """Start ``target`` (see :mod:`.jobrunner`), SIGKILL it ``kills`` times, then let it finish.

    Each run lives a random time in ``[min_uptime, max_uptime]`` seconds before it is killed; a run
    that finishes on its own ends the loop early. The last run must exit 0 within ``timeout``.

    The first run has ``parallelism``; every run after a kill has ``restart_parallelism`` (default:
    the same), so the job restores its checkpoints with another parallelism. The kill loop is
    core's :func:`headwater.core.testing.kill_repeatedly`. With ``after_checkpoints=(low, high)``
    each run is killed instead after ``low``-``high`` new completed checkpoints in
    ``checkpoint_dir`` (:func:`headwater.core.testing.kill_after_checkpoints`), so kills land in a
    working job however long its process takes to start on a loaded machine.
    """
    command = _command(target, checkpoint_dir, parallelism, params or {})
    restart_command = _command(
        target, checkpoint_dir, restart_parallelism or parallelism, params or {}
    )
    if after_checkpoints is not None:
        return kill_after_checkpoints(
            command,
            checkpoint_dir,
            kills=kills,
            checkpoints=after_checkpoints,
            restart_command=restart_command,
            timeout=timeout,
            seed=seed,
        )
    return kill_repeatedly(
        command,
        restart_command=restart_command,
        kills=kills,
        uptime=(min_uptime, max_uptime),
        timeout=timeout,
        seed=seed,
    )
