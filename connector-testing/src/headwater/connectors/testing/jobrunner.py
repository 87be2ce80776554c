r"""Run a job described by ``module:function`` in this process (the target of kill tests).

Usage::

    python -m headwater.connectors.testing.jobrunner pkg.jobs:build \\
        --checkpoint-dir /tmp/ck --parallelism 2 --param out=/tmp/out --param count=5000

``function(checkpoint_dir=Path, parallelism=int, **params)`` returns a :class:`StreamEnvironment`
whose job it builds (sources, sinks, checkpointing into ``checkpoint_dir`` with
``restore_from="latest"``); the runner executes it and exits 0 when it finishes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, build the environment and execute the job."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="module:function building the StreamEnvironment")
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--param", action="append", default=[], help="key=value passed as a keyword")
    args = parser.parse_args(argv)
    module_name, _, function_name = args.target.partition(":")
    build = getattr(importlib.import_module(module_name), function_name)
    params = dict(p.split("=", 1) for p in args.param)
    env = build(checkpoint_dir=args.checkpoint_dir, parallelism=args.parallelism, **params)
    env.execute(args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
