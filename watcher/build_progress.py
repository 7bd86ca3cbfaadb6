"""What a running build is doing: its running workflow and step, looked up with
ListWorkflowExecutions and ListWorkflowStepExecutions after a poll, within a budget.

Best effort, like the diagnostics of a failed build: a look-up that fails (throttled,
a policy without imagebuilder:ListWorkflowExecutions) shows no progress and logs one
warning per cause. It never fails a watch and never raises into the engine.

The budget keeps the look-ups to a share of the shared limiter's rate (default 20%
of `max_tps`), so a fleet of running builds cannot crowd out status polls: when the
limiter is saturated, status polls get the rest (80%), and past the budget progress
is simply looked up less often. Each look-up takes one turn of the limiter per call
and is never retried; a throttled one pauses the look-ups instead of halving the
limiter's rate for every status poll.

Model facts relied on (botocore's imagebuilder service-2.json):
- WorkflowExecutionMetadata has `type` (BUILD, TEST, DISTRIBUTION), `status` (RUNNING,
  ...), `totalStepCount` ("Image Builder sets this count before any steps run") and
  `startTime`; WorkflowStepMetadata has `name`, `action`, `status` and `startTime`.
- "The sum of succeeded, skipped, and failed steps only reaches this total if every
  step finishes in one of those states": a running step's number is how many have
  finished, plus one, whatever order the steps are listed in (none is documented).
- WorkflowExecutionId and WorkflowStepExecutionId are assigned at runtime.
Our reading where the model is silent: the workflow that runs in a status is the one
of that status's type (BUILDING: BUILD, TESTING: TEST, DISTRIBUTING: DISTRIBUTION),
and steps run one at a time. Parallel test groups run several TEST workflows at once;
the last one listed as RUNNING is shown.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Protocol, TypeVar, runtime_checkable

import structlog

from watcher.clock import Clock
from watcher.diagnostics import StepExecution, WorkflowEdge, WorkflowExecution
from watcher.errors import (
    AccessDenied,
    ApiError,
    BadCredentials,
    FinalError,
    RetryableError,
    Throttled,
)
from watcher.model import ImageStatus, _Value
from watcher.ratelimit import CubicLimiter

log = structlog.get_logger("ibwatch")

T = TypeVar("T")

WORKFLOW_OF_STATUS = {
    ImageStatus.BUILDING: "BUILD",
    ImageStatus.TESTING: "TEST",
    ImageStatus.DISTRIBUTING: "DISTRIBUTION",
}
"""The statuses a workflow runs in, and that workflow's type (our reading)."""

DENIED_PAUSE = 600.0
"""Seconds without look-ups after one was refused for access or credentials: a
policy is not fixed from one poll to the next, and each refusal costs a call."""

_MAX_PAGES = 10
"""Pages of one list read before giving up (25 items a page): a workflow of more
than 250 steps is not a real one."""

THROTTLED_PAUSE = 60.0
"""Seconds without look-ups after one was throttled: the calls status polls need
come first, and a throttle says the account's quota is being felt."""

BURST = 4
"""Look-ups the budget can hold: with room for one only, tokens earned while no poll
wanted one were lost, and a fleet of 200 builds saw about 80% of them, not 90%,
show a step within 10 minutes of a status change (tests/engine/test_progress.py)."""

LOOKUP_CALLS = 2.0
"""What one look-up reserves: the workflow list and the step list (a known
execution needs only the second; the unused call goes back)."""


class BuildProgress(_Value):
    """The running workflow and step of a build, as of `observed_at`."""

    workflow: str
    """The workflow's type: BUILD, TEST or DISTRIBUTION."""
    workflow_name: str | None
    """The workflow resource's name (`test-image` of `.../workflow/test/test-image/1.0.2/1`)."""
    workflow_execution_id: str
    step: int | None
    """The running step's number, counted from 1; None between steps."""
    steps: int | None
    """totalStepCount: how many steps the workflow defines."""
    step_name: str | None
    action: str | None
    step_started_at: datetime | None
    observed_at: datetime


@runtime_checkable
class ProgressListener(Protocol):
    """Told when a build's running step changes (the one-shot's progress lines)."""

    def progressed(self, arn: str, progress: BuildProgress) -> None: ...


def progress_text(progress: BuildProgress) -> str:
    """`test workflow, step 2/4 RunTests (RunCommand)`."""
    text = f"{progress.workflow.lower()} workflow"
    if progress.step is not None:
        text += f", step {progress.step}"
        if progress.steps is not None:
            text += f"/{progress.steps}"
        if progress.step_name:
            text += f" {progress.step_name}"
        if progress.action:
            text += f" ({progress.action})"
    return text


class LookupBudget:
    """A token bucket of workflow calls: filled at `share` of the limiter's current
    rate (so a throttled limiter shrinks it too), holding `capacity` calls.

    A look-up reserves its calls before it starts and gets back those it did not
    make, so concurrent look-ups cannot spend the same tokens. Started empty, the
    calls it allows never exceed `share` of what the limiter allowed meanwhile (bar
    a list of more than one page): while status polls keep the limiter busy,
    look-ups are at most that share of all calls."""

    def __init__(
        self,
        share: float,
        limiter: CubicLimiter,
        clock: Clock,
        *,
        capacity: float = LOOKUP_CALLS,
        initial: float = 0.0,
    ) -> None:
        if not 0.0 <= share < 1.0:
            raise ValueError(f"the progress share must be in [0, 1), got {share}")
        self._share = share
        self._limiter = limiter
        self._clock = clock
        self.capacity = max(capacity, LOOKUP_CALLS)
        self._tokens = min(initial, self.capacity)
        self._filled_at = clock.monotonic()

    def reserve(self, calls: float) -> bool:
        """Take `calls` calls' worth now if there is that much; whether it was taken."""
        self._fill()
        if self._share <= 0.0 or self._tokens < calls - 1e-9:
            return False
        self._tokens -= calls
        return True

    def settle(self, reserved: float, made: float) -> None:
        """A look-up that reserved `reserved` calls made `made`: the rest goes back
        (or, after an extra page, the debt is taken from what comes next)."""
        self._fill()
        self._tokens = min(self.capacity, self._tokens + reserved - made)

    def _fill(self) -> None:
        now = self._clock.monotonic()
        earned = (now - self._filled_at) * self._share * self._limiter.rate
        self._tokens = min(self.capacity, self._tokens + earned)
        self._filled_at = now


class _Calls:
    """The calls one look-up made."""

    def __init__(self) -> None:
        self.made = 0


class ProgressLookups:
    """Looks up the progress of running builds for the engine, within a budget."""

    def __init__(
        self,
        edge: WorkflowEdge,
        *,
        limiter: CubicLimiter,
        clock: Clock,
        share: float,
        head_start: int = 0,
        counted: Callable[[str], None] | None = None,
    ) -> None:
        """The budget holds `BURST` look-ups, or `head_start` if more, and starts
        empty; with a `head_start` it starts full (a one-shot wait on a few builds,
        which should show their steps from the first poll), while the daemon's
        look-ups must stay within their share from the start. `counted` hears each
        look-up's outcome: done, skipped or failed (a metric)."""
        self._counted = counted or (lambda _outcome: None)
        self._edge = edge
        self._limiter = limiter
        self._clock = clock
        room = LOOKUP_CALLS * max(BURST, head_start)
        self.budget = LookupBudget(
            share, limiter, clock, capacity=room, initial=room if head_start else 0.0
        )
        self._warned: set[tuple[str, str]] = set()
        self._paused_until = -math.inf

    async def refresh(
        self,
        build_arn: str,
        status: ImageStatus,
        shown: BuildProgress | None,
        *,
        deadline: float | None = None,
    ) -> BuildProgress | None:
        """The progress to show for a build just polled in `status`, given the one
        `shown` so far: looked up again when the budget allows, else `shown` while
        it still belongs to this status's workflow; None where no workflow runs.

        With a `deadline` (seconds: an event waits for the look-up), it is not even
        tried while calls queue for the limiter, and given up when not done in time."""
        workflow = WORKFLOW_OF_STATUS.get(status)
        if workflow is None:
            return None
        current = shown if shown is not None and shown.workflow == workflow else None
        if (
            self._clock.monotonic() < self._paused_until
            or (deadline is not None and self._limiter.queued)
            or not self.budget.reserve(LOOKUP_CALLS)
        ):
            self._counted("skipped")
            return current
        calls = _Calls()
        found: BuildProgress | None = current
        try:
            with self._clock.move_on_after(math.inf if deadline is None else deadline) as late:
                found = await self._look_up(build_arn, workflow, current, calls)
        except FinalError as exc:
            if isinstance(exc, AccessDenied | BadCredentials):
                self._pause(DENIED_PAUSE)
            self._warn(build_arn, exc)
            self._counted("failed")
            return None
        except RetryableError as exc:
            if isinstance(exc, Throttled):
                self._pause(THROTTLED_PAUSE)
            self._warn(build_arn, exc)
            self._counted("failed")
            return current
        finally:
            self.budget.settle(LOOKUP_CALLS, calls.made)
        if late.cancelled_caught:
            self._counted("failed")
            return current
        self._counted("done")
        if self._warned:
            self._warned.clear()  # a new outage is worth a new warning
            log.info("image.progress_available", arn=build_arn)
        return found

    async def _look_up(
        self, build_arn: str, workflow: str, current: BuildProgress | None, calls: _Calls
    ) -> BuildProgress | None:
        now = self._clock.now()
        if current is not None and current.step is not None:
            # The execution is known: its steps alone (one call).
            steps = await self._steps(build_arn, current.workflow_execution_id, calls)
            running = _running_step(steps)
            if running is not None:
                return _at_step(current, steps, running, observed_at=now)
            if not _over(steps, current.steps):
                return current  # between two steps: the last one stays shown
            # The execution is over, yet the status is not: another workflow of this
            # type runs (a parallel test group), or none yet. Said as "no step"; the
            # next look-up lists the workflows again.
            return _between_workflows(current, observed_at=now)
        execution = await self._running_workflow(build_arn, workflow, calls)
        if execution is None:
            return None
        base = BuildProgress(
            workflow=execution.type or workflow,
            workflow_name=_workflow_name(execution.workflow_arn),
            workflow_execution_id=execution.execution_id,
            step=None,
            steps=execution.total_step_count,
            step_name=None,
            action=None,
            step_started_at=None,
            observed_at=now,
        )
        steps = await self._steps(build_arn, execution.execution_id, calls)
        running = _running_step(steps)
        return base if running is None else _at_step(base, steps, running, observed_at=now)

    async def _running_workflow(
        self, build_arn: str, workflow: str, calls: _Calls
    ) -> WorkflowExecution | None:
        """The RUNNING execution of the status's workflow type; of several (parallel
        test groups), the last listed."""
        found: WorkflowExecution | None = None
        token: str | None = None
        for _ in range(_MAX_PAGES):
            items, token = await self._call(
                partial(self._edge.list_workflow_executions, build_arn, next_token=token), calls
            )
            running = [w for w in items if w.status == "RUNNING" and w.type in (None, workflow)]
            found = running[-1] if running else found
            if not token:
                break
        return found

    async def _steps(self, build_arn: str, execution_id: str, calls: _Calls) -> list[StepExecution]:
        """Every step execution of a workflow execution, every page."""
        steps: list[StepExecution] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            items, token = await self._call(
                partial(
                    self._edge.list_workflow_step_executions,
                    build_arn,
                    execution_id,
                    next_token=token,
                ),
                calls,
            )
            steps += items
            if not token:
                break
        return steps

    async def _call(self, fn: Callable[[], Awaitable[T]], calls: _Calls) -> T:
        """One call, paced by the shared limiter, never retried. Its outcome is not
        fed back to the limiter: a throttled look-up pauses the look-ups, and must
        not halve the rate of every status poll."""
        await self._limiter.acquire()
        calls.made += 1  # counted once sent: one given up while queued cost nothing
        return await fn()

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)

    def _warn(self, build_arn: str, exc: ApiError) -> None:
        cause = (type(exc).__name__, exc.code)
        if cause in self._warned:
            return  # one warning per cause, not one per poll of every build
        self._warned.add(cause)
        note = "progress is not shown while this lasts; status polling goes on"
        if isinstance(exc, AccessDenied | BadCredentials):
            note = (
                "progress is not shown; it needs imagebuilder:ListWorkflowExecutions and "
                f"ListWorkflowStepExecutions; tried again in {DENIED_PAUSE:g}s; "
                "status polling goes on"
            )
        elif isinstance(exc, Throttled):
            note = (
                f"progress look-ups pause for {THROTTLED_PAUSE:g}s; "
                "status polling goes on at its own pace"
            )
        log.warning(
            "image.progress_unavailable",
            arn=build_arn,
            error=type(exc).__name__,
            code=exc.code,
            message=str(exc),
            note=note,
        )


_FINISHED = frozenset({"COMPLETED", "SKIPPED", "FAILED"})
"""The step statuses totalStepsSucceeded, totalStepsSkipped and totalStepsFailed
count: "The sum of succeeded, skipped, and failed steps only reaches this total if
every step finishes in one of those states" (the model, WorkflowExecutionMetadata)."""


def _running_step(steps: list[StepExecution]) -> StepExecution | None:
    running = [s for s in steps if s.status == "RUNNING"]
    return running[-1] if running else None


def _over(steps: list[StepExecution], total: int | None) -> bool:
    """Whether the execution will run no further step: one failed or was cancelled,
    or as many finished as the workflow has."""
    if any(s.status in ("FAILED", "CANCELLED") for s in steps):
        return True
    finished = sum(1 for s in steps if s.status in _FINISHED)
    return total is not None and finished >= total


def _at_step(
    base: BuildProgress,
    steps: list[StepExecution],
    running: StepExecution,
    *,
    observed_at: datetime,
) -> BuildProgress:
    """`base` at its running step. The step's number is how many steps have finished,
    plus one: the model promises no order of the listed steps, but it does say what
    the counts of finished steps add up to (see `_FINISHED`)."""
    finished = sum(1 for s in steps if s.status in _FINISHED)
    return base.model_copy(
        update={
            "step": finished + 1,
            "step_name": running.name,
            "action": running.action,
            "step_started_at": running.started_at,
            "observed_at": observed_at,
        }
    )


def _between_workflows(current: BuildProgress, *, observed_at: datetime) -> BuildProgress:
    return current.model_copy(
        update={
            "step": None,
            "step_name": None,
            "action": None,
            "step_started_at": None,
            "observed_at": observed_at,
        }
    )


def _workflow_name(workflow_arn: str | None) -> str | None:
    """`test-image` of `...:workflow/test/test-image/1.0.2/1` (WorkflowBuildVersionArn)."""
    if workflow_arn is None:
        return None
    parts = workflow_arn.partition(":workflow/")[2].split("/")
    return parts[1] if len(parts) >= 2 and parts[1] else None
