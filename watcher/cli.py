"""The `ibwatch` command line: parses arguments, runs one subcommand, returns the
exit code. Errors a user can fix are printed as one clear message, never a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

import anyio

from watcher._validation import FileError
from watcher._version import __version__

EXIT_OK = 0
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibwatch",
        description="Watch EC2 Image Builder builds and tell people when their state changes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser(
        "simulate",
        help="serve a local EC2 Image Builder endpoint playing out a scenario",
        description="Serve a local EC2 Image Builder endpoint (GetImage, ListImageBuildVersions) "
        "that plays out a scenario file. Point the AWS CLI, ibwatch or your own scripts at the "
        "printed URL with --endpoint-url or AWS_ENDPOINT_URL_IMAGEBUILDER.",
    )
    simulate.add_argument("--scenario", required=True, metavar="FILE", help="scenario TOML file")
    simulate.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    simulate.add_argument(
        "--port",
        type=_port,
        default=0,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    simulate.add_argument(
        "--until-settled",
        action="store_true",
        help="exit once every build has reached its final status",
    )
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            return _simulate(args)
    except FileError as exc:
        print(f"ibwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"ibwatch: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    raise AssertionError(f"unhandled command {args.command}")


def _simulate(args: argparse.Namespace) -> int:
    from watcher.simulator import load_scenario
    from watcher.simulator.standalone import serve

    scenario = load_scenario(args.scenario)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(
            lambda: serve(
                scenario,
                host=args.host,
                port=args.port,
                until_settled=args.until_settled,
                out=sys.stdout,
            )
        )
    return EXIT_OK
