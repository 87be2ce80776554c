"""The ``tools/services`` command: bring real test servers up and down.

Examples::

    tools/services up kafka mongodb          # install if needed, start, wait until they answer
    tools/services up --free-ports kafka     # pick free ports (two runs do not collide)
    eval "$(tools/services env --export kafka)"  # HEADWATER_KAFKA_BOOTSTRAP=... and friends
    tools/services status                    # what is up, PIDs, memory
    tools/services logs -n 50 cassandra      # the end of a server's log
    tools/services down --all                # stop everything (and servers of dead test runs)
    tools/services proxy http http://127.0.0.1:4567 --failure-rate 0.1 --delay-ms 5
"""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import ServiceError
from .faults import FaultHttpProxy, TcpProxy
from .manager import StateDir
from .processes import ProcessId
from .registry import SERVICES
from .settings import default_state_dir, free_ports_requested

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(SERVICES)
    parser = argparse.ArgumentParser(
        prog="tools/services",
        description=f"Real test servers on 127.0.0.1. Services: {names}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="state directory (default: $HEADWATER_SERVICES_STATE or .cache/services/run)",
    )
    parser.add_argument(
        "--owner-pid",
        type=int,
        default=None,
        help="the process this state directory belongs to: once it has exited, "
        "`down --all` on the parent directory stops these servers",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start services and wait until they answer")
    up.add_argument("names", nargs="*", metavar="NAME")
    up.add_argument("--all", action="store_true", help="every service")
    up.add_argument(
        "--free-ports",
        action="store_true",
        default=free_ports_requested(),
        help="pick free ports instead of the defaults (also: HEADWATER_SERVICES_FREE_PORTS=1)",
    )

    down = commands.add_parser("down", help="stop services started here")
    down.add_argument("names", nargs="*", metavar="NAME")
    down.add_argument(
        "--all",
        action="store_true",
        help="every service here, and those of finished test sessions below",
    )

    commands.add_parser("status", help="list services, PIDs and memory")

    env = commands.add_parser("env", help="print connection settings as shell variables")
    env.add_argument("names", nargs="+", metavar="NAME")
    env.add_argument("--export", action="store_true", help="prefix each line with `export `")

    proxy = commands.add_parser(
        "proxy",
        help="run a fault-injecting proxy in the foreground (Ctrl-C stops it)",
        description="http: fail a seeded share of batch entries (Kinesis PutRecords, Firehose "
        "PutRecordBatch, DynamoDB BatchWriteItem, _bulk) and/or delay every request. "
        "tcp: relay with an optional delay (outages are scripted from Python: "
        "servicekit.faults.TcpProxy).",
    )
    proxy.add_argument("kind", choices=["http", "tcp"])
    proxy.add_argument("upstream", help="http://host:port for http, host:port for tcp")
    proxy.add_argument("--port", type=int, default=0, help="port to listen on (default: free)")
    proxy.add_argument("--delay-ms", type=float, default=0.0, help="added to every request/chunk")
    proxy.add_argument("--failure-rate", type=float, default=0.0, help="http: share of entries")
    proxy.add_argument("--seed", type=int, default=0, help="http: seed of the failure choice")

    logs = commands.add_parser("logs", help="print the end of a server's log")
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("-n", "--lines", type=int, default=100)
    return parser


def _names(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    if args.all:
        return list(SERVICES)
    if not args.names:
        parser.error(f"{args.command}: name at least one service, or --all")
    return list(args.names)


def _megabytes(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:.0f} MB"


def _run_proxy(args: argparse.Namespace) -> None:
    """Serve one proxy until interrupted; its address goes to stdout."""
    delay = args.delay_ms / 1000
    proxy: FaultHttpProxy | TcpProxy
    if args.kind == "http":
        proxy = FaultHttpProxy(
            args.upstream,
            failure_rate=args.failure_rate,
            seed=args.seed,
            delay=delay,
            port=args.port,
        )
        address = proxy.url
    else:
        host, _, port = args.upstream.rpartition(":")
        proxy = TcpProxy(host, int(port), port=args.port)
        proxy.delay(delay)
        address = proxy.address
    with proxy:
        print(address, flush=True)
        threading.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    state = StateDir(
        args.state.resolve() if args.state else default_state_dir(),
        report=lambda message: print(message, file=sys.stderr, flush=True),
    )
    try:
        if args.command == "up":
            if args.owner_pid is not None:
                owner = ProcessId.of(args.owner_pid)
                if owner is None:
                    parser.error(f"--owner-pid {args.owner_pid}: no such process")
                state.claim(owner)
            state.up(_names(args, parser), free_ports=args.free_ports)
        elif args.command == "down":
            if args.all and not args.names:
                state.down_all()
            else:
                state.down(_names(args, parser))
        elif args.command == "status":
            print(f"{'SERVICE':<14}{'STATE':<8}{'PID':>8}{'RSS':>9}  ADDRESS")
            for row in state.status():
                pid = "-" if row.pid is None else str(row.pid)
                rss = _megabytes(row.rss_bytes)
                print(f"{row.service:<14}{row.state:<8}{pid:>8}{rss:>9}  {row.address}")
        elif args.command == "env":
            prefix = "export " if args.export else ""
            for name in args.names:
                for key, value in state.env(name).items():
                    print(f"{prefix}{key}={shlex.quote(value)}")
        elif args.command == "proxy":
            _run_proxy(args)
        else:
            sys.stdout.write(state.log_tail(args.name, args.lines))
    except (ServiceError, ValueError) as exc:
        print(f"tools/services: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
