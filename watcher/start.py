"""`ibwatch start`: start image pipelines, then wait for their builds exactly as
`wait-until-available` does (same outputs and exit codes).

StartImagePipelineExecution is idempotent on its `clientToken` (botocore's model:
"If you retry a request with the same client token, Image Builder returns the
original response without running the operation again"). The token is printed (and
written to GITHUB_OUTPUT before the first start), so a retried CI job given
`--client-token` gets the same build, not a second one. A run that stops partway
records what it started and why it stopped in `ResultFiles.so_far`, for the result
files: a build started and then left unwatched must not go unmentioned.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from watcher.aws import AwsImageSource
from watcher.clock import Clock
from watcher.engine import Engine, RunResult
from watcher.errors import ApiError
from watcher.exit_codes import EXIT_AVAILABLE
from watcher.ratelimit import CubicLimiter
from watcher.result_files import SoFar
from watcher.retry import RetryPolicy, call_with_retry
from watcher.wait import WaitRequest, exit_for_error, wait_with

MAX_TOKEN = 64
"""The model's `ClientToken`: 1 to 64 characters."""
_SUFFIX = 13
"""'-' and 12 hex digits: what a pipeline's own token adds to a shared one."""


@dataclass(frozen=True)
class StartRequest:
    pipelines: tuple[str, ...]
    wait: WaitRequest
    client_token: str | None = None
    no_wait: bool = False
    cancel_on_timeout: bool = False


def check_client_token(token: str, pipelines: int) -> str | None:
    """What is wrong with a `--client-token` for this many pipelines, if anything."""
    longest = MAX_TOKEN if pipelines == 1 else MAX_TOKEN - _SUFFIX
    if not 1 <= len(token) <= longest:
        return (
            f"--client-token must be 1 to {longest} characters"
            + ("" if pipelines == 1 else f" with {pipelines} pipelines")
            + f", got {len(token)}"
        )
    return None


def token_for(token: str, pipeline: str, pipelines: int) -> str:
    """One pipeline uses the token as given. With several, each gets its own,
    derived from it, since one token cannot serve two requests with different
    parameters: the model lists IdempotentParameterMismatchException for this
    operation, and the EC2 idempotency page its clientToken doc points to says a
    reused token with other parameters is refused. A retry derives the same ones."""
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
    _say(
        stderr,
        f"ibwatch: client token {token}: run again with --client-token {token} "
        "to get the same build(s) rather than start new ones",
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
        builds: list[str] = []
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
                    _say(stderr, "ibwatch: already started: " + ", ".join(builds))
                return exit_for_error(exc)
            _say(stderr, f"ibwatch: started {build} from {pipeline}")
            builds.append(build)
            so_far.started.append(build)
        if request.no_wait:
            stdout.write("".join(f"{build}\n" for build in builds))
            stdout.flush()
            # As a wait's outputs name them (`watcher.github_output`): `build_arn` for
            # one build, `build_arns` (a JSON list) for any number.
            arns = [
                f"build_arn={builds[0] if count == 1 else ''}",
                f"build_arns={_compact(builds)}",
            ]
            _append(github_output, arns, stderr)
            return EXIT_AVAILABLE

        async def cancel_running(engine: Engine, result: RunResult) -> None:
            await _cancel_running(aws, engine, result, stderr)

        return await wait_with(
            aws,
            WaitRequest(**{**request.wait.__dict__, "arns": tuple(builds)}),
            clock=clock,
            stdout=stdout,
            stderr=stderr,
            on_timeout=cancel_running if request.cancel_on_timeout else None,
        )


async def _cancel_running(
    aws: AwsImageSource, engine: Engine, result: RunResult, stderr: TextIO
) -> None:
    """CancelImageCreation for each build still running at the timeout, then one
    more GetImage so the result shows where it went (cancellation is asynchronous)."""
    for watch in result.watches.values():
        arn = watch.build_arn
        if arn is None or watch.ended:
            continue
        try:
            await engine.call(functools.partial(aws.cancel_build, arn, str(uuid.uuid4())))
        except ApiError as exc:
            _say(stderr, f"ibwatch: timed out; could not cancel {arn}: {exc}")
            continue
        result.cancelled.add(watch.arn)
        _say(stderr, f"ibwatch: timed out; cancelled {arn}")
        try:
            snapshot = await engine.call(functools.partial(aws.get, arn))
        except ApiError:
            continue
        if watch.tracked is not None:
            watch.tracked = watch.tracked.model_copy(update={"snapshot": snapshot})


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
