"""`ibwatch start`: start image pipelines, then wait for their builds exactly as
`wait-until-available` does (same outputs and exit codes).

Every pipeline is read first (GetImagePipeline, one call each): one that does not
exist or cannot be read stops the run before anything starts. StartImagePipelineExecution
is idempotent on its `clientToken` (botocore's model: "If you retry a request with the
same client token, Image Builder returns the original response without running the
operation again"). The token is printed (and written to GITHUB_OUTPUT before the
first start), so a retried CI job given `--client-token` gets the same builds, not
new ones (`token_for` says exactly when). A run that stops partway records what it
started and why it stopped in `ResultFiles.so_far`, for the result files: a build
started and then left unwatched must not go unmentioned.
"""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from watcher.aws import AwsImageSource
from watcher.clock import Clock
from watcher.engine import Engine, RunResult, Watch
from watcher.errors import ApiError, Misconfigured
from watcher.exit_codes import EXIT_AVAILABLE
from watcher.model import ImageStatus
from watcher.ratelimit import CubicLimiter
from watcher.result_files import SoFar
from watcher.retry import RetryPolicy, call_with_retry
from watcher.summary import duration_text
from watcher.wait import WaitRequest, exit_for_error, wait_with

MAX_TOKEN = 64
"""The model's `ClientToken`: 1 to 64 characters."""
_SUFFIX = 13
"""'-' and 12 hex digits: what a pipeline's own token adds to a shared one."""
CANCEL_WAIT = 120.0
"""How long `--cancel-on-timeout` waits, at least, for its cancellations to take
effect (two `--interval`s if that is longer): CancelImageCreation "is asynchronous:
the request returns immediately, then Image Builder stops the running build and moves
the image to the CANCELLED state" (botocore's model), and AWS documents no duration.
Two minutes is our reading; a CI job's own timeout must leave room for it."""
STARTED = "STARTED"
"""The status of `--no-wait`'s result: the builds were started, nothing was waited on."""


@dataclass(frozen=True)
class StartRequest:
    pipelines: tuple[str, ...]
    wait: WaitRequest
    client_token: str | None = None
    no_wait: bool = False
    cancel_on_timeout: bool = False


def check_client_token(token: str, pipelines: int) -> str | None:
    """What is wrong with a `--client-token` for this many pipelines, if anything. The
    model's `ClientToken` is a string of 1 to 64 characters, with no pattern; we also
    refuse control characters (our rule): the token is written as is into
    GITHUB_OUTPUT's `key=value` lines and printed on stderr, where a line break would
    end the line early and write a key of its own."""
    longest = MAX_TOKEN if pipelines == 1 else MAX_TOKEN - _SUFFIX
    if not 1 <= len(token) <= longest:
        return (
            f"--client-token must be 1 to {longest} characters"
            + ("" if pipelines == 1 else f" with {pipelines} pipelines")
            + f", got {len(token)}"
        )
    control = next((c for c in token if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return (
            f"--client-token must not hold control characters (a line break, a tab), "
            f"got {control!r} at position {token.index(control) + 1}"
        )
    return None


def token_for(token: str, pipeline: str, pipelines: int) -> str:
    """The clientToken StartImagePipelineExecution gets for `pipeline`, one of
    `pipelines` given together with `token`. One pipeline uses the token as given.
    With several, each gets its own, derived from the token and the pipeline's ARN
    (never from the others or the order), since one token cannot serve two requests
    with different parameters: the model lists IdempotentParameterMismatchException
    for this operation, and the EC2 idempotency page its clientToken doc points to
    says a reused token with other parameters is refused.

    So a token gives back the same build of a pipeline exactly when the pipeline is
    given with it again either alone both times, or with other pipelines both times
    (which ones, and in which order, does not matter), for as long as Image Builder
    remembers the token (not documented). Named alone after being one of several,
    or the other way round, the pipeline starts a new build."""
    if pipelines == 1:
        return token
    return f"{token}-{hashlib.sha256(pipeline.encode()).hexdigest()[:12]}"


async def start_pipelines(
    request: StartRequest,
    *,
    clock: Clock,
    stdout: TextIO,
    stderr: TextIO,
    github_output: Path | None = None,
) -> int:
    token = request.client_token or str(uuid.uuid4())
    count = len(request.pipelines)
    so_far = request.wait.files.so_far if request.wait.files is not None else SoFar()
    so_far.client_token = token
    so_far.pipelines = list(request.pipelines)
    _say(
        stderr,
        f"ibwatch: client token {token}: run the same command again with --client-token "
        f"{token} to get the same build(s) rather than start new ones",
    )
    # Before the first call: a start whose answer was lost may still have started a
    # build, which only this token gets back.
    _append(github_output, [f"client_token={token}"], stderr)
    async with AwsImageSource(
        clock=clock,
        region=request.wait.region,
        endpoint_url=request.wait.endpoint_url,
        concurrency=min(16, count),
    ) as aws:
        limiter = CubicLimiter(request.wait.max_tps, clock)
        refused = await _unreadable(aws, request.pipelines, limiter, clock)
        for pipeline, exc in refused:
            _say(stderr, f"ibwatch: cannot start {pipeline}: {exc}")
            so_far.error(pipeline, str(exc))
        if refused:
            _say(stderr, "ibwatch: nothing was started")
            return max(exit_for_error(exc) for _, exc in refused)
        builds: dict[str, str] = {}
        """Build ARN -> the pipeline that started it, in the order given."""
        for pipeline in request.pipelines:
            own = token_for(token, pipeline, count)
            try:
                build = await call_with_retry(
                    functools.partial(aws.start_pipeline, pipeline, own),
                    limiter=limiter,
                    clock=clock,
                    policy=RetryPolicy(),
                )
            except ApiError as exc:
                _say(stderr, f"ibwatch: could not start {pipeline}: {exc}")
                so_far.error(pipeline, str(exc))
                if builds:
                    _say(
                        stderr,
                        "ibwatch: already started, and nothing waits for them: "
                        + ", ".join(builds)
                        + f"; {rerun_hint(token, count)}",
                    )
                return exit_for_error(exc)
            if request.client_token is None:
                _say(stderr, f"ibwatch: started {build} from {pipeline}")
            else:  # the answer is the same whether the token is new or not
                _say(
                    stderr,
                    f"ibwatch: {pipeline}: build {build} (started now, or before with this "
                    "client token)",
                )
            builds[build] = pipeline
            so_far.started.append(build)
            so_far.started_from[build] = pipeline
        if request.no_wait:
            if request.wait.files is not None:
                # The result is these lines: the CLI's no-result files are for failures.
                request.wait.files.reported = True
            _started(request, so_far, stdout, stderr, github_output)
            return EXIT_AVAILABLE

        async def cancel_running(engine: Engine, result: RunResult) -> None:
            await _cancel_running(
                aws, engine, result, clock=clock, interval=request.wait.interval, stderr=stderr
            )

        return await wait_with(
            aws,
            WaitRequest(**{**request.wait.__dict__, "arns": tuple(builds)}),
            clock=clock,
            stdout=stdout,
            stderr=stderr,
            on_timeout=cancel_running if request.cancel_on_timeout else None,
            pipelines=builds,
        )


def rerun_hint(token: str, pipelines: int) -> str:
    """How to get back the builds of a run that stopped partway (`token_for`)."""
    if pipelines == 1:
        return f"run the same command again with --client-token {token} to get it back"
    return (
        f"run the same command again (the same {pipelines} pipelines) with --client-token "
        f"{token} to get them back and start the rest: each pipeline's token is derived "
        "from it, so a pipeline named alone would start a new build"
    )


async def _unreadable(
    aws: AwsImageSource, pipelines: Sequence[str], limiter: CubicLimiter, clock: Clock
) -> list[tuple[str, ApiError]]:
    """The pipelines GetImagePipeline cannot read (not found, access denied), each
    with why: one call each, before anything starts, so that a typo in the second
    pipeline does not leave the first one's build running unwatched. An unusable AWS
    configuration is the same for every pipeline: named once."""
    refused = []
    for pipeline in pipelines:
        try:
            await call_with_retry(
                functools.partial(aws.get_pipeline, pipeline),
                limiter=limiter,
                clock=clock,
                policy=RetryPolicy(),
            )
        except ApiError as exc:
            refused.append((pipeline, exc))
            if isinstance(exc, Misconfigured):
                break
    return refused


def _started(
    request: StartRequest,
    so_far: SoFar,
    stdout: TextIO,
    stderr: TextIO,
    github_output: Path | None,
) -> None:
    """`--no-wait`'s result: the builds, as text (one ARN a line) or one JSON
    document, and as step outputs shaped as a wait's (`watcher.github_output`):
    `status`, `exit_code`, `build_arn` for one pipeline, `build_arns` for any number."""
    arns = list(so_far.started)
    if request.wait.output == "json":
        report = {"status": STARTED, "exit_code": EXIT_AVAILABLE}
        stdout.write(json.dumps(no_wait_document(report, so_far), indent=2) + "\n")
    else:
        stdout.write("".join(f"{build}\n" for build in arns))
    stdout.flush()
    lines = [
        f"status={STARTED}",
        f"exit_code={EXIT_AVAILABLE}",
        f"build_arn={arns[0] if len(request.pipelines) == 1 else ''}",
        f"build_arns={_compact(arns)}",
    ]
    _append(github_output, lines, stderr)


def no_wait_document(report: Mapping[str, Any], so_far: SoFar) -> dict[str, Any]:
    """`start --no-wait --output json`'s one document, whatever the outcome: the
    status and exit code of `report` (STARTED and 0; else ERROR or INTERRUPTED, the
    no-result report's), the client token, the builds started so far with their
    pipelines, and the errors met (empty when all started)."""
    return {
        "status": report["status"],
        "exit_code": report["exit_code"],
        "client_token": so_far.client_token,
        "builds": [
            {"pipeline_arn": so_far.started_from.get(build), "build_arn": build}
            for build in so_far.started
        ],
        "errors": [dict(error) for error in so_far.errors],
    }


async def _cancel_running(
    aws: AwsImageSource,
    engine: Engine,
    result: RunResult,
    *,
    clock: Clock,
    interval: float,
    stderr: TextIO,
) -> None:
    """CancelImageCreation for each build still running at the timeout, then GetImage
    on them every `interval`, paced and retried as polls are, until each has ended or
    `CANCEL_WAIT` (two intervals if longer) has passed: cancellation is asynchronous,
    and a result saying CANCELLED must have seen it. The cancel calls are inside that
    same bound (many pipelines, a low --max-tps): a build not asked for by then is
    reported as still running, with no cancellation requested. Each one asked for is
    in `result.cancelled`; what it then ended as decides the exit code
    (`watcher.wait.exit_code`): CANCELLED is the timeout's (3), FAILED a failure (1),
    AVAILABLE a build done (0 if every build is)."""
    running = [w for w in result.watches.values() if w.build_arn is not None and not w.ended]
    asked: list[Watch] = []
    refused: set[str] = set()
    waited = max(CANCEL_WAIT, 2 * interval)
    with clock.move_on_after(waited):
        for watch in running:
            arn = watch.build_arn
            assert arn is not None
            try:
                await engine.call(
                    functools.partial(aws.cancel_build, arn, str(uuid.uuid4())), arn=arn
                )
            except ApiError as exc:
                _say(stderr, f"ibwatch: timed out; could not cancel {arn}: {exc}")
                refused.add(watch.arn)
                continue
            result.cancelled.add(watch.arn)
            asked.append(watch)
            _say(stderr, f"ibwatch: timed out; cancelling {arn}")
        for watch in running:
            if watch.arn in refused:
                # Refused mostly because it has ended since the last poll (AWS answers
                # ResourceInUseException for a build no longer in progress): read
                # what it ended as, so that decides the exit code as for the others.
                await engine.poll_now(watch.arn)
        while pending := [watch for watch in asked if not watch.ended]:
            await clock.sleep(interval)
            for watch in pending:
                # The engine's own poll: a FAILED seen now gets its diagnostics and
                # reaches the result's listeners as any other would.
                await engine.poll_now(watch.arn)
    for watch in running:
        if watch.arn not in result.cancelled and watch.arn not in refused:
            _say(
                stderr,
                f"ibwatch: timed out; no time left to cancel {watch.build_arn} within "
                f"{duration_text(waited)}: left running",
            )
    for watch in asked:
        arn, status = watch.build_arn, _status(watch)
        if watch.error is not None:
            # A final error while reading it (credentials expired, access taken away):
            # reported as for any poll (exit 4, which wins over the timeout's 3).
            _say(
                stderr,
                f"ibwatch: cancellation of {arn} was requested, but its status could not be "
                f"read: {watch.error}",
            )
        elif status is ImageStatus.CANCELLED:
            _say(stderr, f"ibwatch: timed out; cancelled {arn}")
        elif status is ImageStatus.AVAILABLE:
            _say(
                stderr,
                f"ibwatch: {arn} ended AVAILABLE before its cancellation took effect: the "
                "cancellation came too late, and its outputs are kept",
            )
        elif status is not None and status.terminal:
            _say(stderr, f"ibwatch: {arn} ended {status} before its cancellation took effect")
        else:
            _say(
                stderr,
                f"ibwatch: cancellation of {arn} was requested, but it was still "
                f"{status or 'not seen'} after {duration_text(waited)}",
            )


def _status(watch: Watch) -> ImageStatus | None:
    return watch.tracked.snapshot.status if watch.tracked is not None else None


def _append(path: Path | None, lines: list[str], stderr: TextIO) -> None:
    """Step outputs of the start itself; as with the result's, a GITHUB_OUTPUT that
    cannot be written costs a warning, never the exit code."""
    if path is None:
        return
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    except OSError as exc:
        _say(stderr, f"ibwatch: warning: GITHUB_OUTPUT {path}: {exc.strerror or exc}")


def _compact(value: list[str]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _say(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()
