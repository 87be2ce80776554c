"""Run a benchmark: ``python benchmarks/run.py NAME [--json]``.

Each benchmark is ``benchmarks/NAME.py`` with a ``run() -> dict`` function. The last line printed is
the result as JSON (with ``--json``) or as ``key: value`` lines otherwise. Limits are measured in the
same run (a raw client loop, a plain-Python loop); nothing here is a timed test assertion.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Benchmarks are loaded by path; with their directory on sys.path, benchmarks/cassandra.py would
# shadow the cassandra package it measures.
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    del sys.path[0]


def main(argv: list[str] | None = None) -> int:
    available = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in ("run", "__init__"))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=available)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    spec = importlib.util.spec_from_file_location(
        f"benchmark_{args.name}", HERE / f"{args.name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
