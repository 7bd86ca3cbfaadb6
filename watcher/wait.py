"""`ibwatch wait-until-available`: block a CI job until builds are AVAILABLE.

Runs the same engine as the daemon (in-memory store) and stops once every build
has ended. Exit codes are a contract (`watcher.exit_codes`): 0 all AVAILABLE; 1 a
build ended otherwise (FAILED, CANCELLED, ...); 2 usage error, nothing called; 3
timeout; 4 an API error retrying will not heal.
"""

from __future__ import annotations

import json
import random
import re
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TextIO

import anyio

from watcher.aws import AwsImageSource, ImageSource
from watcher.clock import Clock
from watcher.diagnostics import Diagnostics
from watcher.engine import Engine, RunResult, Schedule, Watch
from watcher.errors import ApiError, Misconfigured
from watcher.exit_codes import (
    EXIT_API_ERROR,
    EXIT_AVAILABLE,
    EXIT_FAILED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from watcher.listing import newest_build, why_no_build
from watcher.model import ImageStatus, Transition
from watcher.progress import Progress
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy
from watcher.store import MemoryStore

if TYPE_CHECKING:
    from watcher.result_files import ResultFiles


OnTimeout = Callable[[Engine, RunResult], Awaitable[None]]

CANCEL_TOO_LATE = "ended before the cancellation asked for at the timeout took effect"
"""A build that ended on its own while `start --cancel-on-timeout` waited for its
cancellation: it keeps its end (an AVAILABLE one its outputs, CancelImageCreation's
doc: "Output resources that the build already created ... aren't removed")."""


@dataclass(frozen=True)
class WaitRequest:
    arns: tuple[str, ...]
    timeout: float = 7200.0
    interval: float = 30.0
    region: str | None = None
    endpoint_url: str | None = None
    output: Literal["text", "json"] = "text"
    max_tps: float = 5.0
    heartbeat: float = 300.0
    not_found_grace: float = 120.0
    progress_share: float = 0.2
    """The share of `max_tps` that looking up the running workflow step may use."""
    log_lines: int = 0
    """On FAILED, this many last lines of the build's log join the result (redacted;
    `--log-lines`, 0..1000). Needs logs:GetLogEvents; without it they are left out."""
    files: ResultFiles | None = field(default=None, compare=False)
    """Where the result goes besides stdout ($GITHUB_OUTPUT, `--dotenv`, `--summary`);
    carried here so that `ibwatch start` passes it on untouched, and marked as
    written when the wait writes its report (the CLI writes the no-result files
    otherwise)."""


async def wait_until_available(
    request: WaitRequest,
    *,
    clock: Clock,
    stdout: TextIO,
    stderr: TextIO,
    source: ImageSource | None = None,
) -> int:
    """Wait, print the result, write the result files; return the exit code."""
    async with AwsImageSource(
        clock=clock,
        region=request.region,
        endpoint_url=request.endpoint_url,
        concurrency=min(16, len(request.arns)),
    ) as aws:
        return await wait_with(
            aws,
            request,
            clock=clock,
            stdout=stdout,
            stderr=stderr,
            source=source,
        )


async def wait_with(
    aws: AwsImageSource,
    request: WaitRequest,
    *,
    clock: Clock,
    stdout: TextIO,
    stderr: TextIO,
    source: ImageSource | None = None,
    on_timeout: OnTimeout | None = None,
    pipelines: Mapping[str, str] | None = None,
) -> int:
    """`wait_until_available` on clients the caller opened (`ibwatch start` shares
    them); `on_timeout` may act on the builds still running when time is up;
    `pipelines` (build ARN -> the pipeline that started it) goes into the result."""
    engine = Engine(
        source=source or aws,
        store=MemoryStore(),
        clock=clock,
        limiter=CubicLimiter(request.max_tps, clock),
        schedule=Schedule(
            interval_for=lambda _status: request.interval,
            not_found_grace=request.not_found_grace,
        ),
        retry=RetryPolicy(),
        concurrency=min(16, len(request.arns)),
        rng=random.Random(),
        # A version ARN is listed first: GetImage on it shows only its newest
        # AVAILABLE build, never the one in progress or failed (botocore's model).
        resolver=lambda arn: newest_build(aws, engine.call, arn),
        progress_share=request.progress_share,
        progress_head_start=min(16, len(request.arns)),
        log_lines=request.log_lines,
    )
    progress = Progress(
        stderr, clock, engine.watches, live=stderr.isatty(), heartbeat=request.heartbeat
    )
    failures = FailureDiagnostics()
    engine.add_listener(progress)
    engine.add_listener(failures)
    stop = _Interruption(engine)
    async with anyio.create_task_group() as signals:
        # Taken over until the result is known, not only while the engine runs: what
        # comes after a timeout (a listing, `--cancel-on-timeout`'s wait of up to 2
        # minutes) is cut short by SIGINT/SIGTERM as the wait is, and the result so
        # far is still reported (README: "130/143 ... the result so far is printed").
        signals.start_soon(_interrupt_on_signals, stop.signalled)
        async with anyio.create_task_group() as group:
            group.start_soon(progress.run)
            result = await engine.run(
                request.arns, stop_when_ended=True, time_limit=request.timeout
            )
            group.cancel_scope.cancel()
        with stop.after_the_run:
            if result.timed_out:
                await _explain_unbuilt(aws, engine, result)
            if result.timed_out and on_timeout is not None:
                await on_timeout(engine, result)
                # Builds may have ended during `on_timeout`: the result is what they
                # ended as (`exit_code`), and time ran out only for those that did not
                # end on their own.
                result.timed_out = not all(
                    _ended_on_its_own(w, result) for w in result.watches.values()
                )
        signals.cancel_scope.cancel()
    if result.interrupted is None and stop.signum is not None:
        result.interrupted = stop.signum
        _say_interrupted_after_the_timeout(stderr, stop.signum)
    report = build_report(result, failures.by_watched, pipelines)
    stdout.write(
        json.dumps(report, indent=2) + "\n" if request.output == "json" else render_text(report)
    )
    stdout.flush()
    if request.files is not None:
        request.files.write(report, stderr)
    return int(report["exit_code"])


async def _explain_unbuilt(aws: AwsImageSource, engine: Engine, result: RunResult) -> None:
    """Add to each "no build of VERSION_ARN yet" whether its image name has any build
    at all (a misspelled name has none): one more listing per such ARN, made only
    now that time is up, so the wait itself costs no extra call. Not while the API
    was failing (`last_error`): the result says that already, and retrying the
    listing would only hold the exit up."""
    for watch in result.watches.values():
        if watch.build_arn is not None or not watch.waiting or watch.error or watch.last_error:
            continue
        try:
            hint = await why_no_build(aws, engine.call, watch.arn)
        except ApiError:
            continue  # the result says what it said before
        watch.waiting = f"{watch.waiting}; {hint}"


class FailureDiagnostics:
    """Keeps the diagnostics of each build's FAILED event for the result: the
    engine's watches hold the snapshot only, and the event is where they are."""

    def __init__(self) -> None:
        self.by_watched: dict[str, Diagnostics] = {}
        """By the event's `watched`: the ARN as given on the command line."""

    async def send(self, event: Transition) -> None:
        if event.current.status is ImageStatus.FAILED and event.diagnostics is not None:
            self.by_watched[event.watched] = event.diagnostics
        else:  # moved on (a retried build): its old failure no longer explains it
            self.by_watched.pop(event.watched, None)


class _Interruption:
    """What SIGINT or SIGTERM stops: the engine while it runs, and then what follows a
    timeout (`after_the_run`), at once, so that the result so far is reported."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.signum: int | None = None
        self.after_the_run = anyio.CancelScope()
        """Entered after the engine's run; cancelled before that, it ends at once."""

    def signalled(self, signum: int) -> None:
        self.signum = signum
        self._engine.interrupt(signum)
        self.after_the_run.cancel()


def _say_interrupted_after_the_timeout(stderr: TextIO, signum: int) -> None:
    name = signal.Signals(signum).name
    stderr.write(f"ibwatch: {name} came after the timeout; reporting the result so far\n")
    stderr.flush()


async def _interrupt_on_signals(interrupt: Callable[[int], None]) -> None:
    """SIGINT and SIGTERM end the wait with what was seen so far, and exit 130 or
    143: a CI step must never read an interrupted wait as a pass."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only (an embedding caller's thread)
    # Closing the receiver sets SIG_DFL (asyncio's remove_signal_handler): the handlers
    # from before the wait (`watcher.termination`'s) come back instead.
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with anyio.open_signal_receiver(*before) as signals:
            async for signum in signals:
                interrupt(signum)
                return
    finally:
        for signum, handler in before.items():
            if handler is not None:
                signal.signal(signum, handler)


def exit_code(result: RunResult) -> int:
    """From what the builds ended as, whenever that was: a build that ends during
    `start --cancel-on-timeout`'s wait for its cancellation counts as it ended (AVAILABLE:
    its outputs stay, CancelImageCreation's doc: "Output resources that the build
    already created, such as AMIs and snapshots, aren't removed"; FAILED: a failure);
    only one seen CANCELLED after asking counts as the timeout."""
    if result.interrupted is not None:
        return 128 + result.interrupted
    watches = result.watches.values()
    codes = {exit_for_error(w.error) for w in watches if w.error is not None}
    if codes:
        return EXIT_USAGE if EXIT_USAGE in codes else EXIT_API_ERROR
    if any(_ended_otherwise(_status(w)) and not _cancelled_by_us(w, result) for w in watches):
        return EXIT_FAILED
    if result.timed_out or not all(_ended_on_its_own(w, result) for w in watches):
        return EXIT_TIMEOUT
    # 0 only when every build is seen AVAILABLE, and there is at least one: the
    # contract, held here rather than left to the cases above covering every path.
    if watches and all(_status(w) is ImageStatus.AVAILABLE for w in watches):
        return EXIT_AVAILABLE
    return EXIT_TIMEOUT


def _cancelled_by_us(watch: Watch, result: RunResult) -> bool:
    """CANCELLED after the run asked for it at the timeout: the timeout's doing."""
    return watch.arn in result.cancelled and _status(watch) is ImageStatus.CANCELLED


def _ended_on_its_own(watch: Watch, result: RunResult) -> bool:
    return watch.ended and not _cancelled_by_us(watch, result)


def exit_for_error(error: ApiError) -> int:
    """The exit code of a call that failed for good: 2 when the AWS configuration
    itself is unusable (nothing could be called), else 4. 2 wins where both occur."""
    return EXIT_USAGE if isinstance(error, Misconfigured) else EXIT_API_ERROR


def _ended_otherwise(status: ImageStatus | None) -> bool:
    """Terminal but not AVAILABLE: FAILED, CANCELLED, DEPRECATED, DELETED, DISABLED."""
    return status is not None and status.terminal and status is not ImageStatus.AVAILABLE


def _status(watch: Watch) -> ImageStatus | None:
    return watch.tracked.snapshot.status if watch.tracked else None


def build_report(
    result: RunResult,
    diagnostics: Mapping[str, Diagnostics] | None = None,
    pipelines: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The result as plain data: what --output json prints, and what text renders.
    `diagnostics` are those of the FAILED events, by the ARN watched; `pipelines`
    name the pipeline each build ARN was started from (`ibwatch start`)."""
    known = diagnostics or {}
    started_by = pipelines or {}
    images = [
        _image_report(w, w.arn in result.cancelled, known.get(w.watched))
        | {"pipeline_arn": started_by.get(w.arn)}
        for w in result.watches.values()
    ]
    code = exit_code(result)
    overall = {
        EXIT_AVAILABLE: "AVAILABLE",
        EXIT_TIMEOUT: "TIMEOUT",
        EXIT_API_ERROR: "ERROR",
        EXIT_USAGE: "ERROR",
    }.get(code)
    if result.interrupted is not None:
        overall = "INTERRUPTED"
    if overall is None:
        overall = next(
            status.value
            for w in result.watches.values()
            if (status := _status(w)) is not None
            and _ended_otherwise(status)
            and not _cancelled_by_us(w, result)
        )
    return {
        "status": overall,
        "exit_code": code,
        "timed_out": result.timed_out,
        "interrupted": signal.Signals(result.interrupted).name if result.interrupted else None,
        "images": images,
    }


def _image_report(watch: Watch, cancelled: bool, diagnostics: Diagnostics | None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "arn": watch.arn,
        "build_arn": watch.build_arn,
        "status": None,
        "reason": None,
        "failed_in": None,
        "failed_step": None,
        "error": None,
        "waiting": watch.waiting,
        "last_error": _error(watch.last_error),
        "cancelled_at_timeout": False,
        # Asked for at the timeout (`start --cancel-on-timeout`); `cancelled_at_timeout`
        # once the build was seen CANCELLED: cancellation is asynchronous.
        "cancel_requested": cancelled,
        "amis": [],
        "containers": [],
        # `failed_step` above is failureContext's step name (a string, kept as it was);
        # the diagnostics' step says more, under its own key.
        "failed_workflow_step": None,
        "log_group": None,
        "log_stream": None,
        "console_url": None,
        "log_tail": None,
    }
    report["error"] = _error(watch.error)
    if watch.tracked is not None:
        snapshot = watch.tracked.snapshot
        context = snapshot.failure_context or {}
        report |= {
            "build_arn": snapshot.arn,
            "status": snapshot.status.value,
            "cancelled_at_timeout": cancelled and snapshot.status is ImageStatus.CANCELLED,
            "reason": snapshot.reason,
            "failed_in": context.get("imageStatus"),
            "failed_step": context.get("failedStep"),
            "amis": [{"region": a.region, "image": a.image} for a in snapshot.outputs.amis],
            "containers": [
                {"region": c.region, "image_uris": list(c.image_uris)}
                for c in snapshot.outputs.containers
            ],
        }
        if diagnostics is not None and snapshot.status is ImageStatus.FAILED:
            report |= _diagnostics_report(diagnostics)
    return report


def _diagnostics_report(diagnostics: Diagnostics) -> dict[str, Any]:
    step = diagnostics.failed_step
    return {
        "failed_workflow_step": None
        if step is None
        else {
            "workflow": step.workflow,
            "name": step.name,
            "action": step.action,
            "message": step.message,
        },
        "log_group": diagnostics.log_group,
        "log_stream": diagnostics.log_stream,
        "console_url": diagnostics.console_url,
        # Redacted when read (watcher.diagnostics); null when not asked for or unreadable.
        "log_tail": None if diagnostics.log_tail is None else list(diagnostics.log_tail),
    }


def _error(error: ApiError | None) -> dict[str, str] | None:
    if error is None:
        return None
    return {"type": type(error).__name__, "code": error.code, "message": str(error)}


def _cause(image: dict[str, Any]) -> str:
    """Why a build is not done, when something kept failing: part of a timeout's line."""
    last = image["last_error"]
    if last is None:
        return ""
    if image["status"] is None and not image["waiting"]:
        return f"; never reached the API: {last['message']}"
    return f"; last error: {last['message']}"


def render_text(report: dict[str, Any]) -> str:
    lines = []
    for image in report["images"]:
        if image["error"] is not None:
            lines.append(f"{image['arn']}  ERROR  {image['error']['message']}")
            continue
        status = image["status"] or ("TIMEOUT" if report["timed_out"] else "UNKNOWN")
        line = f"{image['build_arn'] or image['arn']}  {status}"
        if image["build_arn"] is None and image.get("waiting"):
            line += f"  ({image['waiting']}{_cause(image)})"
        elif report["timed_out"] and image["status"] is None:
            line += f"  (no answer before the timeout{_cause(image)})"
        elif report["timed_out"] and status != "AVAILABLE" and not ImageStatus(status).terminal:
            line += f"  (still in progress at the timeout{_cause(image)})"
        elif report.get("interrupted") and not ImageStatus(status).terminal:
            line += f"  (still in progress when {report['interrupted']} came)"
        if image["cancelled_at_timeout"]:
            line += "  (cancelled at the timeout)"
        elif image.get("cancel_requested") and not ImageStatus(status).terminal:
            line += "  (cancellation requested, not yet in effect)"
        elif image.get("cancel_requested") and status != "CANCELLED":
            line += f"  ({CANCEL_TOO_LATE})"
        if image["failed_in"]:
            line += f"  in {image['failed_in']}"
        if image["reason"]:
            line += f": {image['reason']}"
        if image["failed_step"]:
            line += f"  (failed step: {image['failed_step']})"
        lines.append(line)
        lines += _diagnostics_lines(image)
        lines += [f"  {ami['region']}  {ami['image']}" for ami in image["amis"]]
        lines += [f"  {c['region']}  {uri}" for c in image["containers"] for uri in c["image_uris"]]
    return "\n".join(lines) + "\n"


def _diagnostics_lines(image: dict[str, Any]) -> list[str]:
    """The block under a failed build's line: only what is known of why it failed."""
    lines = []
    step = image.get("failed_workflow_step")
    if step is not None:
        where = f"{step['workflow']} workflow, step" if step["workflow"] else "step"
        text = f"  failed in {where} {step['name']}"
        if step["action"]:
            text += f" ({step['action']})"
        if step["message"]:
            # A multi-line message stays inside the block, indented under its step.
            text += ": " + "\n    ".join(step["message"].splitlines())
        lines.append(text)
    if image.get("log_group"):
        lines.append(f"  logs: {image['log_group']} {image['log_stream'] or ''}".rstrip())
    if image.get("console_url"):
        lines.append(f"  console: {image['console_url']}")
    tail = image.get("log_tail")
    if tail:
        count = len(tail)
        lines.append(f"  last {count} log line{'s' if count > 1 else ''}:")
        lines += [f"    {_printable(line)}".rstrip() for line in tail]
    return lines


def diagnostics_block(diagnostics: Diagnostics) -> list[str]:
    """The text block that says why a build failed, as the result prints it under
    the build's line (`ibwatch demo` prints it too)."""
    return _diagnostics_lines(_diagnostics_report(diagnostics))


# ANSI escape sequences and the other control characters a build log may hold: in a
# terminal they could recolour, move the cursor or retitle the window.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(line: str) -> str:
    """A log line as text may show it: without escape sequences or control characters
    (JSON carries the line as it was read, bar redaction)."""
    return _CONTROL.sub("", _ANSI.sub("", line))
