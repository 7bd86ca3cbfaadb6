"""The `ibwatch` command line: parses arguments, runs one subcommand, returns the
exit code. Errors a user can fix are printed as one clear message (exit 2),
never a traceback.

Each subcommand imports what it needs when it runs, never at module level: a CI
step's `wait-until-available` must start about as fast as one AWS CLI call, so
pydantic (config and scenario files) and the daemon's modules stay out of it
(`tests/cli/test_one_shot.py` guards the import set).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from watcher._version import __version__
from watcher.clock import SystemClock
from watcher.durations import parse_duration
from watcher.exit_codes import EXIT_INTERNAL, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, MEANINGS
from watcher.model import Arn, InvalidArn, PipelineArn, check_listable, explain_pipeline_arn
from watcher.result_files import ResultFiles, no_result
from watcher.termination import Terminated, sigterm_raises

if TYPE_CHECKING:
    from watcher.wait import WaitRequest

EXIT_OK = 0
EXIT_INTERRUPTED = EXIT_SIGINT  # Ctrl-C before a command could catch it itself
ONE_SHOT = ("wait-until-available", "start")
"""The commands that wait for builds and hand their result on to CI."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"ibwatch: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ibwatch",
        description="Watch EC2 Image Builder builds and tell people when their state changes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    run = commands.add_parser(
        "run",
        help="watch the ARNs of a config file until stopped",
        description="The daemon: watch the configured ARNs, remember what "
        "was seen in the state file, send each transition to the sinks. "
        "Stops on SIGTERM or SIGINT.",
    )
    run.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    _log_options(run)

    wait = commands.add_parser(
        "wait-until-available",
        help="wait until builds are AVAILABLE (for CI); exit code says how they ended",
        description="Poll until every build has ended. Exit codes: "
        + "; ".join(f"{code} {text}" for code, text in MEANINGS.items())
        + ". Result on stdout, progress on stderr; with GITHUB_OUTPUT set, step outputs are "
        "appended to it, whatever the outcome.",
    )
    wait.add_argument(
        "arns",
        nargs="+",
        metavar="ARN",
        help="image build-version ARN (.../NAME/1.2.3/4), or version ARN (.../NAME/1.2.3) "
        "meaning its newest build, found by listing; a wildcard (1.x.x, 1.2.x, x.x.x) means "
        "the newest build of the highest matching version",
    )
    _wait_options(wait)

    start = commands.add_parser(
        "start",
        help="start image pipelines, then wait for their builds like wait-until-available",
        description="Call StartImagePipelineExecution for each pipeline, then wait for the "
        "new builds exactly as wait-until-available does (same options, outputs and exit "
        "codes). The client token is printed: give it back with --client-token when a CI job "
        "is retried, and Image Builder returns the same builds instead of starting new ones.",
    )
    start.add_argument(
        "pipelines",
        nargs="+",
        metavar="PIPELINE_ARN",
        help="image pipeline ARN (.../image-pipeline/NAME)",
    )
    start.add_argument(
        "--client-token",
        metavar="TOKEN",
        help="idempotency token (1-64 characters; default: a new one, printed)",
    )
    start.add_argument(
        "--no-wait",
        action="store_true",
        help="print the new build ARN(s) (--output json: one JSON document) and exit 0 "
        "without waiting: 0 then means started, not AVAILABLE. The wait's own options "
        "(--cancel-on-timeout, --timeout, --log-lines, --summary, --dotenv) are refused "
        "with it",
    )
    start.add_argument(
        "--cancel-on-timeout",
        action="store_true",
        help="at the timeout, cancel (CancelImageCreation) the builds still running, then "
        "wait up to 2m (or two --interval) for them to show CANCELLED, the cancel calls "
        "included; exit 3, or 0/1 when every build instead ended on its own meanwhile "
        "(AVAILABLE / one FAILED)",
    )
    _wait_options(start)

    demo = commands.add_parser(
        "demo",
        help="watch the demo scenario on the embedded simulator",
        description="Run the watcher against the embedded simulator "
        "playing a scenario; print each transition; exit 0 once every "
        "build has ended. No AWS account needed.",
    )
    demo.add_argument("--scenario", metavar="FILE", help="scenario TOML (default: the demo)")
    demo.add_argument(
        "--interval", type=_duration, default=0.5, help="poll interval in real time (default: 0.5s)"
    )
    demo.add_argument(
        "--push",
        action="store_true",
        help="also push each status change through an SQS queue (moto's server on loopback, "
        "pip install 'moto[server]') and watch with the push fast path",
    )
    _log_options(demo, default="console")

    check = commands.add_parser(
        "check-config",
        help="validate a config file and print it with secrets redacted",
        description="Validate the config (secrets are read from their variables and files, "
        "never printed) and print the effective configuration. Exit 0 if valid, 2 if not.",
    )
    check.add_argument("--config", required=True, metavar="FILE", help="TOML config file")

    notify = commands.add_parser(
        "notify-test",
        help="send a sample event through the configured sinks",
        description="Send a sample BUILDING -> AVAILABLE event straight through each sink "
        "(or one) and report each result. Exit 0 if every sink acknowledged it, 1 if not.",
    )
    notify.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    notify.add_argument("--sink", metavar="NAME", help="only this sink")

    deliveries = commands.add_parser(
        "deliveries",
        help="list undelivered events and dead letters, or replay dead letters",
        description="Inspect the outbox of the state file named by the config.",
    )
    actions = deliveries.add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=_Parser
    )
    listing = actions.add_parser("list", help="pending deliveries and dead letters")
    listing.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    replay = actions.add_parser("replay", help="put dead letters back in the outbox")
    replay.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    replay.add_argument("--sink", metavar="NAME", help="only this sink's dead letters")
    replay.add_argument(
        "seqs",
        nargs="*",
        type=int,
        metavar="SEQ",
        help="dead letters to replay (as `deliveries list` numbers them); default: all",
    )

    simulate = commands.add_parser(
        "simulate",
        help="serve a local EC2 Image Builder endpoint playing out a scenario",
        description="Serve a local EC2 Image Builder endpoint that plays out a scenario file: "
        "GetImage, ListImageBuildVersions, GetImagePipeline, ListImagePipelines, "
        "ListImagePipelineImages, StartImagePipelineExecution, CancelImageCreation, "
        "ListWorkflowExecutions, ListWorkflowStepExecutions, GetWorkflowExecution, "
        "GetWorkflowStepExecution, and CloudWatch Logs GetLogEvents (README, 'What it "
        "serves'). Point the AWS CLI, ibwatch or your own scripts at the printed URL with "
        "--endpoint-url or AWS_ENDPOINT_URL_IMAGEBUILDER.",
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
    simulate.add_argument(
        "--events-queue",
        type=_queue_url,
        metavar="URL",
        help="SQS queue URL: also send it an EventBridge 'EC2 Image Builder Image State "
        "Change' event per status change (endpoint: the URL's host, or AWS_ENDPOINT_URL_SQS; "
        "the scenario's [events] makes some go missing, arrive twice or out of order)",
    )
    return parser


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="log lines on stderr from this level up; debug also prints the traceback "
        "of an internal error (default: warning)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_duration,
        default=None,  # DEFAULT_TIMEOUT, resolved in `_wait_request`: see `_WAIT_ONLY`
        help="give up after this long, exit 3 (default: 2h)",
    )
    parser.add_argument(
        "--interval",
        type=_duration,
        default=30.0,
        help="time between polls of one build (default: 30s)",
    )
    parser.add_argument(
        "--not-found-grace",
        type=_duration,
        default=120.0,
        help="a build answering NotFound this soon after it is first polled is retried "
        "(a just-started build can 404 for a moment); later it is an error, exit 4 "
        "(default: 2m)",
    )
    parser.add_argument("--region", help="AWS region for the clients; an ARN's own region wins")
    parser.add_argument(
        "--endpoint-url",
        type=_endpoint_url,
        help="Image Builder endpoint (default: botocore's, which "
        "honours AWS_ENDPOINT_URL_IMAGEBUILDER)",
    )
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="result format on stdout (default: text)",
    )
    parser.add_argument(
        "--summary",
        type=_appended_file,
        metavar="PATH",
        help="append a Markdown summary of the result to PATH, e.g. $GITHUB_STEP_SUMMARY: "
        "the builds, why one failed (step, message, links, log lines), the AMIs per region; "
        f"with no result (exit 2, 4, {EXIT_INTERNAL}, 130 or 143 before the wait), the exit "
        "code and what it means. Written whatever the outcome, except when the command line "
        "itself is refused (exit 2 with a usage line); a file that cannot be written is a "
        "warning, never a change of exit code",
    )
    parser.add_argument(
        "--max-tps",
        type=_rate,
        default=5.0,
        help="most Image Builder calls per second across all ARNs (default: 5)",
    )
    parser.add_argument(
        "--log-lines",
        type=_log_lines,
        default=None,  # 0, resolved in `_wait_request`: see `_WAIT_ONLY`
        metavar="N",
        help=f"for a FAILED build, show the last N lines of its build log (CloudWatch Logs; "
        f"needs logs:GetLogEvents), secrets-looking strings redacted; 0 to {MAX_LOG_LINES} "
        "(default: 0, none)",
    )
    parser.add_argument(
        "--dotenv",
        type=_replaced_file,
        metavar="PATH",
        help="also write the result to PATH (replaced) as a GitLab CI dotenv report "
        "(artifacts:reports:dotenv): IBWATCH_STATUS, IBWATCH_EXIT_CODE, IBWATCH_BUILD_ARN, "
        "IBWATCH_FAILED_STEP, IBWATCH_LOG_GROUP, IBWATCH_CONSOLE_URL, IBWATCH_AMIS ({} when "
        "none), IBWATCH_CONTAINER_URIS ([] when none) and IBWATCH_AMI_<REGION>. Written "
        "whatever the outcome (with no result: status ERROR or INTERRUPTED and the exit code), "
        "except when the command line itself is refused (exit 2 with a usage line: a file "
        "left by an earlier run is then left as it was); a file that cannot be written is a "
        "warning, never a change of exit code",
    )


def _replaced_file(text: str) -> Path:
    """A file this run will replace (`--dotenv`, through a file written beside it and
    renamed over it), checked before anything runs: its directory exists and can be
    written, and so can the file if it is there. A path that cannot be is a usage error
    naming it now, not a warning at the end of a two-hour wait."""
    return _writable_file(text, in_directory=True)


def _appended_file(text: str) -> Path:
    """A file this run will append to (`--summary`): the file itself when it is there
    (a FIFO, /dev/stderr, a file in a directory this run cannot write in), else as
    `_replaced_file`, since appending creates it."""
    return _writable_file(text, in_directory=False)


def _writable_file(text: str, *, in_directory: bool) -> Path:
    path = Path(text)
    try:
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a directory; name a file in it")
        exists = path.exists()
        if exists and not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"{text!r}: the file cannot be written")
        if exists and not in_directory:
            return path
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r}: no directory {str(path.parent)!r}")
        if not os.access(path.parent, os.W_OK):
            raise argparse.ArgumentTypeError(
                f"{text!r}: cannot write in directory {str(path.parent)!r}"
            )
    except OSError as exc:  # a name too long, a loop of links
        raise argparse.ArgumentTypeError(f"{text!r}: {exc.strerror or exc}") from None
    return path


def _endpoint_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"expected an http(s) URL like 'http://127.0.0.1:4000', got {text!r}"
        )
    return text


def _pipeline_arn(text: str) -> str:
    """The pipeline `text` names, for `start`; InvalidArn says what is wrong. Checked
    after parsing, as the image ARNs of `wait-until-available` are, so that the result
    files name each one refused."""
    try:
        found = PipelineArn.parse(text)
    except InvalidArn:  # the same reason, without offering image-pipeline/*
        raise InvalidArn(explain_pipeline_arn(text, wildcard=False)) from None
    if found.is_wildcard:
        raise InvalidArn(f"{text!r}: name one pipeline to start, not all of them")
    return str(found)


def _checked_arns(
    args: argparse.Namespace, texts: Sequence[str], check: Callable[[str], str]
) -> tuple[str, ...] | None:
    """The ARNs `texts` name, each once, in order; None when any is refused: then each
    refusal is printed and goes to the result files' errors (exit 2, before any call)."""
    arns: dict[str, None] = {}
    refused = []
    for text in texts:
        try:
            arns[check(text)] = None
        except InvalidArn as exc:
            refused.append((text, str(exc)))
    files = getattr(args, "result_files", None)
    for text, message in refused:
        print(f"ibwatch: {message}", file=sys.stderr)
        if files is not None:
            files.so_far.error(text, message)
    return None if refused else tuple(arns)


def _log_options(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default=default,
        help=f"JSON lines, or console lines; auto picks console on a terminal (default: {default})",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="default: info",
    )


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than zero, got {text!r}")
    return seconds


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


MIN_RATE = 0.01
"""Calls per second: one every 100 s. Slower is a typo, not a pace."""


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < MIN_RATE:
        raise argparse.ArgumentTypeError(
            f"expected a finite number of calls per second, at least {MIN_RATE}, got {text}"
        )
    return value


MAX_LOG_LINES = 1000
"""As `[diagnostics] log_lines` allows (watcher.config.diagnostics, which this module
must not import: it brings pydantic; a test checks the two agree)."""


def _log_lines(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of lines, got {text!r}") from None
    if not 0 <= value <= MAX_LOG_LINES:
        raise argparse.ArgumentTypeError(
            f"expected 0 to {MAX_LOG_LINES} lines (0: none), got {value}"
        )
    return value


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
    args.own_process = argv is None  # the `ibwatch` program itself, not a caller's call
    if args.command in ONE_SHOT:
        return _with_result_files(args)
    return _dispatch(args)


def _with_result_files(args: argparse.Namespace) -> int:
    """A one-shot command hands its result on to CI whatever the outcome
    ($GITHUB_OUTPUT, `--dotenv`, `--summary`): the wait writes its report; when the
    command ended without one (a pipeline that could not be started, an internal
    error, a signal before the wait, a usage error found after parsing), the files
    get the exit code and the status alone (`watcher.result_files.no_result`). A
    dotenv report left by an earlier run never passes for this run's: it is removed
    first. `start --no-wait` has no wait's result to hand on: once its builds are
    started, GITHUB_OUTPUT gets their ARNs (`watcher.start`); when it fails first, the
    no-result files as any command's (the builds started so far, the client token),
    and `--output json` its one document; --dotenv and --summary are refused with it."""
    github_output = os.environ.get("GITHUB_OUTPUT")
    no_wait = getattr(args, "no_wait", False)
    files = ResultFiles(
        github_output=Path(github_output) if github_output else None,
        dotenv=args.dotenv,
        summary=args.summary,
    )
    if files.dotenv is not None:
        try:
            files.dotenv.unlink(missing_ok=True)
        except OSError as exc:
            print(f"ibwatch: --dotenv {files.dotenv}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    args.result_files = files
    # The program itself only: a signal handler is the process's, not a caller's.
    guard = (
        sigterm_raises(unless=lambda: files.reported)
        if args.own_process
        else nullcontext(lambda: None)
    )
    with guard as disarm:
        code = _dispatch(args)
        disarm()  # the run ends now, with `code`, and writes its files whole
        if not files.reported:
            report = no_result(code, files.so_far)
            files.write(report, sys.stderr)
            if no_wait and args.output == "json":
                from watcher.start import no_wait_document

                print(json.dumps(no_wait_document(report, files.so_far), indent=2))
    return code


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {
        "run": _run,
        "wait-until-available": _wait,
        "start": _start,
        "demo": _demo,
        "simulate": _simulate,
        "check-config": _check_config,
        "notify-test": _notify_test,
        "deliveries": _deliveries,
    }
    try:
        return handlers[args.command](args)
    except Terminated:
        # SIGTERM before the wait could catch it itself (`watcher.termination`).
        print("ibwatch: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        # Ctrl-C before the command could catch it itself: never a pass (0).
        print("ibwatch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except InvalidArn as exc:
        print(f"ibwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"ibwatch: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the last line of defence: never a traceback, never 0 or 1
        # Imported here, not at the top: it brings pydantic (see the module docstring).
        from watcher._validation import FileError

        if isinstance(exc, FileError):
            print(f"ibwatch: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return _unexpected(exc, debug=getattr(args, "log_level", None) == "debug")


def _unexpected(exc: BaseException, *, debug: bool) -> int:
    """An error no command handled. A damaged state file found mid-run (inside a task
    group, so wrapped), or AWS settings no call can be made with (a profile of
    [aws.accounts] in no AWS file), is the user's to fix: exit 2. Anything else is a
    bug: one line and exit 70; the traceback only at --log-level debug."""
    from watcher.errors import Misconfigured
    from watcher.store import StoreError

    leaf = _first_leaf(exc)
    if isinstance(leaf, StoreError | Misconfigured):
        print(f"ibwatch: {leaf}", file=sys.stderr)
        return EXIT_USAGE
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(
        f"ibwatch: internal error: {type(leaf).__name__}: {leaf} (a bug; please report it, "
        "with the traceback --log-level debug prints)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside nested exception groups (anyio's task groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _run(args: argparse.Namespace) -> int:
    from watcher.daemon import run_daemon
    from watcher.logs import configure
    from watcher.store import StoreError
    from watcher.wiring import load_config

    config = load_config(args.config)
    configure(sys.stdout, log_format=args.log_format, level=args.log_level)
    try:
        return anyio.run(
            lambda: run_daemon(config, clock=SystemClock(), config_path=Path(args.config))
        )
    except StoreError as exc:
        print(f"ibwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE


@contextmanager
def _starting_up(args: argparse.Namespace) -> Iterator[None]:
    """Import a one-shot command's modules without the cyclic garbage collector,
    then freeze what they made out of every later collection. Start-up allocates
    hundreds of thousands of long-lived objects (botocore's, aiohttp's) and frees
    almost none: collecting over and over as they pile up was about a tenth of a
    `wait-until-available` on an AVAILABLE image. The collector
    is on again for the rest of the run, which can last hours. Only when `main`
    runs as the process (no argv given): freezing a host's objects (a test run's)
    is not ours to do."""
    if not getattr(args, "own_process", False):
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _wait(args: argparse.Namespace) -> int:
    with _starting_up(args):
        from watcher.logs import configure
        from watcher.wait import wait_until_available

    arns = _checked_arns(args, args.arns, lambda text: str(check_listable(Arn.parse(text))))
    if arns is None:
        return EXIT_USAGE
    # Human lines, never JSON: they land between the progress lines a person reads.
    configure(sys.stderr, log_format="human", level=args.log_level)
    return anyio.run(
        lambda: wait_until_available(
            _wait_request(args, arns),
            clock=SystemClock(),
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    )


def _start(args: argparse.Namespace) -> int:
    with _starting_up(args):
        from watcher.logs import configure
        from watcher.start import StartRequest, check_client_token, start_pipelines

    pipelines = _checked_arns(args, args.pipelines, _pipeline_arn)
    if pipelines is None:
        return EXIT_USAGE
    reports = [name for name in ("dotenv", "summary") if getattr(args, name) is not None]
    if args.no_wait and reports:
        print(
            f"ibwatch: --{reports[0]} says how the builds ended, and --no-wait does not wait "
            "for that (it prints the new build ARNs)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    ignored = _wait_only_options(args) if args.no_wait else []
    if ignored:
        print(
            f"ibwatch: {ignored[0]} acts on the wait, and --no-wait does not wait: "
            f"give one or the other",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.client_token is not None:
        problem = check_client_token(args.client_token, len(pipelines))
        if problem:
            print(f"ibwatch: {problem}", file=sys.stderr)
            return EXIT_USAGE
    configure(sys.stderr, log_format="human", level=args.log_level)  # as `_wait` does
    request = StartRequest(
        pipelines=pipelines,
        wait=_wait_request(args, ()),
        client_token=args.client_token,
        no_wait=args.no_wait,
        cancel_on_timeout=args.cancel_on_timeout,
    )
    github_output = os.environ.get("GITHUB_OUTPUT")
    return anyio.run(
        lambda: start_pipelines(
            request,
            clock=SystemClock(),
            stdout=sys.stdout,
            stderr=sys.stderr,
            github_output=Path(github_output) if github_output else None,
        )
    )


_WAIT_ONLY = ("cancel_on_timeout", "timeout", "log_lines")
"""`start`'s options that only the wait reads and that promise an outcome: given with
--no-wait, they would be ignored without a word (--summary and --dotenv are refused
with their own reason). The pacing of polls (--interval, --not-found-grace) promises
nothing and is let through, so one option set serves both forms of a CI step. Their
parser default is None (False for the flag), so that given at all, even at the value
the wait would use (`--timeout 2h`, `--log-lines 0`), is told from not given."""

DEFAULT_TIMEOUT = 7200.0
"""`--timeout` when not given: 2h."""


def _wait_only_options(args: argparse.Namespace) -> list[str]:
    """The wait-only options given on the command line, whatever their value."""
    return [
        "--" + name.replace("_", "-")
        for name in _WAIT_ONLY
        # Not `not in (None, False)`: 0 == False, and `--log-lines 0` is given.
        if getattr(args, name) is not None and getattr(args, name) is not False
    ]


def _wait_request(args: argparse.Namespace, arns: tuple[str, ...]) -> WaitRequest:
    from watcher.wait import WaitRequest

    return WaitRequest(
        arns=arns,
        timeout=DEFAULT_TIMEOUT if args.timeout is None else args.timeout,
        interval=args.interval,
        region=args.region,
        endpoint_url=args.endpoint_url,
        output=args.output,
        max_tps=args.max_tps,
        not_found_grace=args.not_found_grace,
        log_lines=0 if args.log_lines is None else args.log_lines,
        files=getattr(args, "result_files", None),
    )


def _demo(args: argparse.Namespace) -> int:
    from watcher.demo import DEMO_SCENARIO, MOTO_MISSING, push_available, run_demo
    from watcher.logs import configure

    if args.push and not push_available():
        print(f"ibwatch: {MOTO_MISSING}", file=sys.stderr)
        return 2
    configure(sys.stdout, log_format=args.log_format, level=args.log_level)
    scenario = Path(args.scenario) if args.scenario else DEMO_SCENARIO
    return anyio.run(
        lambda: run_demo(
            scenario, clock=SystemClock(), out=sys.stdout, interval=args.interval, push=args.push
        )
    )


def _check_config(args: argparse.Namespace) -> int:
    from watcher.operator_commands import check_config
    from watcher.wiring import load_config

    return check_config(load_config(args.config), sys.stdout)


def _notify_test(args: argparse.Namespace) -> int:
    from watcher.logs import configure
    from watcher.operator_commands import notify_test
    from watcher.wiring import load_config

    config = load_config(args.config)
    # The log sink's sample line goes to stderr: stdout is the report.
    configure(sys.stderr, log_format="auto")
    return anyio.run(
        lambda: notify_test(config, sink_name=args.sink, clock=SystemClock(), out=sys.stdout)
    )


def _deliveries(args: argparse.Namespace) -> int:
    from watcher.operator_commands import list_deliveries, replay_deliveries
    from watcher.store import StoreError
    from watcher.wiring import load_config

    config = load_config(args.config)
    try:
        if args.action == "list":
            return anyio.run(lambda: list_deliveries(config, sys.stdout))
        return anyio.run(
            lambda: replay_deliveries(
                config, seqs=args.seqs, sink=args.sink, clock=SystemClock(), out=sys.stdout
            )
        )
    except StoreError as exc:
        print(f"ibwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _simulate(args: argparse.Namespace) -> int:
    from watcher.simulator import load_scenario
    from watcher.simulator.standalone import serve

    scenario = load_scenario(args.scenario)
    anyio.run(
        lambda: serve(
            scenario,
            host=args.host,
            port=args.port,
            until_settled=args.until_settled,
            out=sys.stdout,
            events_queue=args.events_queue,
        )
    )
    return EXIT_OK


def _queue_url(text: str) -> str:
    # Imported here: `simulate --events-queue` alone needs it (see the module docstring).
    from watcher.simulator.push import check_queue_url

    try:
        return check_queue_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
