"""The ``headwater`` command line: run jobs, inspect checkpoints, list installed connectors."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import runpy
import shlex
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import import_module, metadata
from pathlib import Path
from typing import Any, cast

from headwater.core._connectors import ENTRY_POINT_GROUP, installed_connectors
from headwater.core._console import error_summary, format_count, print_table
from headwater.core._errors import HeadwaterError, JobInterruptedError
from headwater.core._runtime._executor import RESTORE_ENV, STARTED
from headwater.core._runtime._progress import PROGRESS_ENV
from headwater.core._runtime._storage import list_checkpoints, read_metadata
from headwater.core._settings import suggest
from headwater.core.savepoints import read_checkpoint

__all__ = ["main"]


def _run(args: argparse.Namespace) -> int:
    progress = "0" if args.quiet else "plain" if args.no_progress else "1"
    os.environ.setdefault(PROGRESS_ENV, progress)
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
    except SystemExit:
        raise
    except Exception as exc:  # the job's error, for people: one line and the user's frame
        if args.verbose:
            traceback.print_exception(exc)
            print(f"headwater: {error_summary(exc)}", file=sys.stderr)
        else:
            print(f"headwater: {error_summary(exc)}", file=sys.stderr)
            print("headwater: run with --verbose for the full traceback", file=sys.stderr)
        return 1
    return 0


def _run_target(target: str, job_args: list[str]) -> None:
    sys.argv = [target, *job_args]
    if target.endswith(".toml"):
        from headwater.core._pipeline import load_pipeline

        load_pipeline(target).run()
    elif ":" in target and not target.endswith(".py"):
        _call_function(target)
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
        functions = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise SystemExit(
            f"headwater run: module '{module_name}' ({module.__file__}) has {what} "
            f"'{function_name}'{suggest(function_name, functions)}"
        )
    return cast(Callable[[], Any], function)


def _call_function(target: str) -> None:
    """Call ``module:function``; run the job it returns, or report one it built and did not run."""
    from headwater.core import _environment
    from headwater.core._environment import CREATED, StreamEnvironment
    from headwater.core._pipeline import Pipeline

    function = _load_function(target)
    _environment._collect_created = True
    try:
        result = function()
    finally:
        _environment._collect_created = False
    built, CREATED[:] = list(CREATED), []
    if isinstance(result, StreamEnvironment | Pipeline):
        if isinstance(result, Pipeline) or result not in STARTED:
            print(f"headwater: {target} returned a job; running it", file=sys.stderr)
            result.run() if isinstance(result, Pipeline) else result.execute(target)
        return
    idle = [env for env in built if env._sinks and env not in STARTED]
    if idle:
        raise SystemExit(
            f"headwater run: {target} built a job but did not run it: call env.execute() "
            f"at its end, or return the StreamEnvironment and headwater runs it"
        )


def _position(blob: Any) -> Any:
    """A split's checkpointed position for people: its JSON (most connectors' split format).

    Kafka's is ``[topic, partition, offset, stopping offset]``, a Kinesis shard's names the shard
    and its sequence number; a binary split shows its size.
    """
    if not isinstance(blob, dict) or "b64" not in blob:
        return blob
    try:
        data = base64.b64decode(blob["b64"])
    except (binascii.Error, TypeError):
        return "<undecodable>"
    try:
        return json.loads(data)
    except ValueError:
        return f"<{len(data)} bytes>"


def _describe_checkpoint(path: Path) -> dict[str, Any]:
    meta = read_metadata(path)
    reader = read_checkpoint(path)
    operators = {}
    positions: dict[str, dict[str, list[Any]]] = {}
    for op in reader.operators():
        states = reader.operator_state(op.uid)
        entries = reader.keyed_entry_count(op.uid)
        for subtask, state in enumerate(states):
            entries += sum(
                len(v) if isinstance(v, list | dict) else 1
                for k, v in state.items()
                if k != "keyed"
            )
            splits = state.get("splits")
            if isinstance(splits, list) and splits:
                positions.setdefault(op.uid, {})[str(subtask)] = [_position(b) for b in splits]
        operators[op.uid] = {
            "name": op.name,
            "parallelism": op.parallelism,
            "state_entries": entries,
            "state_bytes": reader.state_bytes(op.uid),
        }
    return {
        "path": str(path),
        "checkpoint_id": meta["checkpoint_id"],
        "kind": meta["kind"],
        "job_name": meta["job_name"],
        "taken_at": datetime.fromtimestamp(meta["timestamp_ms"] / 1000, tz=UTC).isoformat(),
        "operators": operators,
        "sources": sorted(meta["enumerators"]),
        "source_positions": positions,
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
        described = [_describe_checkpoint(p) for _, p in rows]
        print_table(
            ("id", "kind", "taken at", "job", "state", "path"),
            [
                (
                    str(d["checkpoint_id"]),
                    d["kind"],
                    d["taken_at"],
                    d["job_name"],
                    _size(sum(op["state_bytes"] for op in d["operators"].values())),
                    d["path"],
                )
                for d in described
            ],
            sys.stdout,
        )
        return 0
    d = _describe_checkpoint(path)
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print_table(
        ("operator uid", "name", "parallelism", "state entries", "state size"),
        [
            (
                uid,
                op["name"],
                str(op["parallelism"]),
                format_count(op["state_entries"]),
                _size(op["state_bytes"]),
            )
            for uid, op in d["operators"].items()
        ],
        sys.stdout,
        title=f"{d['kind']} {d['checkpoint_id']} of job '{d['job_name']}' taken at {d['taken_at']}",
    )
    positions = [
        (uid, subtask, json.dumps(position))
        for uid, by_subtask in d["source_positions"].items()
        for subtask, splits in sorted(by_subtask.items(), key=lambda kv: int(kv[0]))
        for position in splits
    ]
    if positions:
        print_table(
            ("source uid", "subtask", "split position (the source's own format)"),
            positions,
            sys.stdout,
            title="source positions (splits being read, where each resumes)",
        )
    else:
        print("source positions: none (no split was being read: finished or not started)")
    print(f"sources with enumerator state: {', '.join(d['sources']) or '-'}")
    return 0


def _size(n: int) -> str:
    """``512 B``, ``3.2 KiB``, ``1.5 MiB``..."""
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


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

    def fit(c: Any) -> str:
        if c.error:
            return f"BROKEN ({c.error})"
        return "ok" if c.compatible else f"INCOMPATIBLE (needs headwater-core {c.requirement})"

    print_table(
        ("connector", "distribution", "version", "status", "summary"),
        [
            (
                c.identifier,
                c.distribution,
                c.version,
                fit(c),
                c.spec.summary if c.spec is not None else "",
            )
            for c in rows
        ],
        sys.stdout,
        title=f"headwater-core {core}",
    )
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
    run.add_argument(
        "--quiet", action="store_true", help="show neither progress nor the summary table"
    )
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="plain progress lines instead of the live display (as when stderr is not a terminal)",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="on an error, print the full traceback (default: one line and the failing line of your code)",
    )
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
