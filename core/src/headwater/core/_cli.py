"""The ``headwater`` command line: run jobs, inspect checkpoints, list installed connectors."""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import import_module, metadata
from pathlib import Path
from typing import Any, cast

from headwater.core._connectors import ENTRY_POINT_GROUP, installed_connectors
from headwater.core._errors import HeadwaterError, JobInterruptedError
from headwater.core._runtime._executor import RESTORE_ENV
from headwater.core._runtime._storage import list_checkpoints, read_metadata
from headwater.core.savepoints import read_checkpoint

__all__ = ["main"]

PROGRESS_ENV = "HEADWATER_PROGRESS"
"""Set by ``headwater run``: environments built in the job show progress unless told otherwise."""


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault(PROGRESS_ENV, "0" if args.quiet else "1")
    if args.restore is not None:
        os.environ[RESTORE_ENV] = args.restore
    try:
        _run_target(args.target, args.args)
    except JobInterruptedError as exc:
        if exc.savepoint is None:
            print(f"headwater: {exc}", file=sys.stderr)
        else:
            savepoint = str(exc.savepoint.resolve())
            resume = shlex.join(
                ["headwater", "run", "--restore", savepoint, args.target, *args.args]
            )
            print(f"headwater: stopped; savepoint at {savepoint}", file=sys.stderr)
            print(f"headwater: resume with: {resume}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("headwater: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    return 0


def _run_target(target: str, job_args: list[str]) -> None:
    sys.argv = [target, *job_args]
    if target.endswith(".toml"):
        from headwater.core._pipeline import load_pipeline

        load_pipeline(target).run()
    elif ":" in target and not target.endswith(".py"):
        _load_function(target)()
    else:
        path = Path(target)
        if not path.is_file():
            raise SystemExit(f"headwater run: no such file: {target}")
        sys.path.insert(0, str(path.parent.resolve()))
        runpy.run_path(str(path), run_name="__main__")


def _load_function(target: str) -> Callable[[], Any]:
    """The function ``module:function`` names, with the module looked up from the working directory."""
    module_name, _, function_name = target.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise  # a module the job imports is missing: its own traceback says which
        raise SystemExit(f"headwater run: no module named '{module_name}'") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        what = "no function" if function is None else "no callable"
        raise SystemExit(
            f"headwater run: module '{module_name}' ({module.__file__}) has {what} "
            f"'{function_name}'"
        )
    return cast(Callable[[], Any], function)


def _describe_checkpoint(path: Path) -> dict[str, Any]:
    meta = read_metadata(path)
    reader = read_checkpoint(path)
    operators = {
        op.uid: {
            "name": op.name,
            "parallelism": op.parallelism,
            "state_entries": reader.keyed_entry_count(op.uid)
            + sum(
                len(v) if isinstance(v, list | dict) else 1
                for state in reader.operator_state(op.uid)
                for k, v in state.items()
                if k != "keyed"
            ),
        }
        for op in reader.operators()
    }
    return {
        "path": str(path),
        "checkpoint_id": meta["checkpoint_id"],
        "kind": meta["kind"],
        "job_name": meta["job_name"],
        "taken_at": datetime.fromtimestamp(meta["timestamp_ms"] / 1000, tz=UTC).isoformat(),
        "operators": operators,
        "sources": sorted(meta["enumerators"]),
    }


def _checkpoints(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if args.action == "list":
        rows = list_checkpoints(path)
        if args.json:
            print(json.dumps([_describe_checkpoint(p) for _, p in rows], indent=2))
            return 0
        if not rows:
            print(f"no completed checkpoints in {path}")
            return 0
        for checkpoint_id, p in rows:
            d = _describe_checkpoint(p)
            print(f"{checkpoint_id:>8}  {d['kind']:<10} {d['taken_at']}  {d['job_name']}  {p}")
        return 0
    d = _describe_checkpoint(path)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(
        f"checkpoint {d['checkpoint_id']} ({d['kind']}) of job '{d['job_name']}' at {d['taken_at']}"
    )
    print(f"sources with enumerator state: {', '.join(d['sources']) or '-'}")
    for uid, op in d["operators"].items():
        print(
            f"  {uid:<24} {op['name']:<40} parallelism {op['parallelism']}, "
            f"{op['state_entries']} state entries"
        )
    return 0


def _connectors(args: argparse.Namespace) -> int:
    core = metadata.version("headwater-core")
    rows = installed_connectors()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "identifier": c.identifier,
                        "distribution": c.distribution,
                        "version": c.version,
                        "requires_core": c.requirement,
                        "compatible": c.compatible,
                        "error": c.error,
                    }
                    for c in rows
                ],
                indent=2,
            )
        )
        return 0
    print(f"headwater-core {core}")
    for c in rows:
        fit = "ok" if c.compatible else f"INCOMPATIBLE (needs headwater-core {c.requirement})"
        if c.error:
            fit = f"BROKEN ({c.error})"
        summary = c.spec.summary if c.spec is not None else ""
        print(f"  {c.identifier:<12} {c.distribution:<32} {c.version:<12} {fit}  {summary}")
    return 0


def version_text() -> str:
    """``headwater-core X``, then one line per installed connector distribution (its identifiers).

    Read from the packages' metadata only: nothing is imported, so it answers at once.
    """
    by_distribution: dict[tuple[str, str], list[str]] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist
        if dist is not None and dist.name != "headwater-core":
            by_distribution.setdefault((dist.name, dist.version), []).append(entry.name)
    lines = [f"headwater-core {metadata.version('headwater-core')}"]
    lines += [
        f"{name} {version} ({', '.join(sorted(identifiers))})"
        for (name, version), identifiers in sorted(by_distribution.items())
    ]
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    """``--version``: computed when asked (it loads the connectors' entry points)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``headwater`` command."""
    parser = argparse.ArgumentParser(prog="headwater", description="headwater stream processing")
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the versions of headwater-core and the installed connectors, then exit",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="run a job: a Python file, module:function or a pipeline file (.toml)"
    )
    run.add_argument("target")
    run.add_argument("--quiet", action="store_true", help="do not show progress")
    run.add_argument(
        "--restore",
        metavar="PATH",
        help="start from this checkpoint or savepoint (the path Ctrl-C printed), or 'latest'",
    )
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the job")
    run.set_defaults(handler=_run)
    ckpt = sub.add_parser("checkpoints", help="inspect checkpoints and savepoints")
    ckpt.add_argument("action", choices=["list", "show"])
    ckpt.add_argument("path", help="checkpoint storage directory (list) or a checkpoint (show)")
    ckpt.add_argument("--json", action="store_true")
    ckpt.set_defaults(handler=_checkpoints)
    conn = sub.add_parser("connectors", help="installed connectors and whether they fit this core")
    conn.add_argument("--json", action="store_true")
    conn.set_defaults(handler=_connectors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``headwater`` command."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except HeadwaterError as exc:
        print(f"headwater: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
