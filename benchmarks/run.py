"""Run benchmarks: ``python benchmarks/run.py NAME [--json]`` or ``python benchmarks/run.py all``.

Each benchmark is ``benchmarks/NAME.py`` with a ``run() -> dict`` function. The last line printed is
the result as JSON (with ``--json``) or as ``key: value`` lines otherwise. Limits are measured in the
same run (a raw client loop, a plain-Python loop); nothing here is a timed test assertion.

``all`` runs every benchmark, each in a child process of its own (a failure is recorded, the others
still run), and writes one JSON report to ``--output`` (default ``benchmarks/results.json``):
``{"environment": {...}, "benchmarks": {NAME: {"result": {...}} | {"error": "..."}}}``. With
``--json`` the report is also the last line printed. ``benchmarks/report.py`` turns it into the
docs page. The ``HEADWATER_BENCH_*`` variables (scale, rounds, rows) apply to every child.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = ("run", "report", "__init__")
# Benchmarks are loaded by path; with their directory on sys.path, benchmarks/cassandra.py would
# shadow the cassandra package it measures.
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    del sys.path[0]


def available() -> list[str]:
    """Every benchmark's name (its module's stem)."""
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS)


def run_one(name: str) -> dict[str, Any]:
    """Import ``benchmarks/NAME.py`` and return what its ``run()`` returns."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result: dict[str, Any] = module.run()
    return result


def run_all() -> dict[str, Any]:
    """Every benchmark in a child process; the report of them all."""
    benchmarks: dict[str, Any] = {}
    for name in available():
        print(f"benchmark {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        child = subprocess.run(
            [sys.executable, str(HERE / "run.py"), name, "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = round(time.monotonic() - started, 1)
        lines = child.stdout.strip().splitlines()
        if child.returncode == 0 and lines:
            benchmarks[name] = {"result": json.loads(lines[-1]), "seconds": seconds}
        else:
            tail = (child.stderr or child.stdout).strip().splitlines()[-5:]
            benchmarks[name] = {"error": "\n".join(tail), "seconds": seconds}
        print(f"benchmark {name}: {'ok' if 'result' in benchmarks[name] else 'FAILED'} "
              f"in {seconds} s", file=sys.stderr, flush=True)  # fmt: skip
    return {
        "environment": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "settings": {k: v for k, v in os.environ.items() if k.startswith("HEADWATER_BENCH_")},
        },
        "benchmarks": benchmarks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=[*available(), "all"])
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "results.json",
        help="where 'all' writes its report (default: benchmarks/results.json)",
    )
    args = parser.parse_args(argv)
    if args.name == "all":
        report = run_all()
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if args.json:
            print(json.dumps(report))
        failed = [name for name, entry in report["benchmarks"].items() if "error" in entry]
        return 1 if failed else 0
    result = run_one(args.name)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
