"""What a running build is doing: its running workflow and step, looked up with
ListWorkflowExecutions and ListWorkflowStepExecutions after a poll, within a budget.

Best effort, like the diagnostics of a failed build: a look-up that fails (throttled,
a policy without imagebuilder:ListWorkflowExecutions) shows no progress and logs one
warning per cause. It never fails a watch and never raises into the engine.

The budget keeps the look-ups to a share of the shared limiter's rate (default 20%
of `max_tps`), so a fleet of running builds cannot crowd out status polls: past it,
progress is simply looked up less often. Each look-up takes one turn of the limiter
per call and is never retried (a throttle still slows the limiter, as any call's).

Model facts relied on (botocore's imagebuilder service-2.json):
- WorkflowExecutionMetadata has `type` (BUILD, TEST, DISTRIBUTION), `status` (RUNNING,
  ...), `totalStepCount` ("Image Builder sets this count before any steps run") and
  `startTime`; WorkflowStepMetadata has `name`, `action`, `status` and `startTime`.
- WorkflowExecutionId and WorkflowStepExecutionId are assigned at runtime.
Our reading where the model is silent: steps are listed in the order they run (the
running step's place in that list is its number), and the workflow that runs in a
status is the one of that status's type (BUILDING: BUILD, TESTING: TEST,
DISTRIBUTING: DISTRIBUTION). Parallel test groups run several TEST workflows at
once; the last one listed as RUNNING is shown.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Protocol, TypeVar, runtime_checkable

import structlog

from watcher.clock import Clock
from watcher.diagnostics import StepExecution, WorkflowEdge, WorkflowExecution
from watcher.errors import AccessDenied, ApiError, BadCredentials, FinalError, RetryableError
from watcher.model import ImageStatus, _Value
from watcher.ratelimit import CubicLimiter
from watcher.retry import RetryPolicy, call_with_retry

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

_ONE_ATTEMPT = RetryPolicy(attempts=1)


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

    def progressed(self, arn: str, progress: BuildProgress | None) -> None: ...


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
    elif progress.steps is not None:
        text += f", {progress.steps} steps"
    return text


class LookupBudget:
    """A token bucket of workflow calls: filled at `share` of the limiter's current
    rate (so a throttled limiter shrinks it too), holding at most one look-up's
    worth, and starting with `initial` calls.

    Started empty, the calls it allows never exceed `share` of what the limiter
    allowed meanwhile: while status polls keep the limiter busy, look-ups are at
    most that share of all calls."""

    def __init__(
        self, share: float, limiter: CubicLimiter, clock: Clock, *, initial: float = 0.0
    ) -> None:
        if not 0.0 <= share < 1.0:
            raise ValueError(f"the progress share must be in [0, 1), got {share}")
        self._share = share
        self._limiter = limiter
        self._clock = clock
        self.capacity = 2.0
        """Calls: one full look-up (the workflow list and the step list)."""
        self._tokens = min(initial, self.capacity)
        self._filled_at = clock.monotonic()

    def allows(self, calls: float) -> bool:
        """Whether `calls` calls may be made now (they are charged one by one)."""
        self._fill()
        return self._share > 0.0 and self._tokens >= calls - 1e-9

    def charge(self) -> None:
        """One call was made: may go below zero when a list took more pages."""
        self._fill()
        self._tokens -= 1.0

    def _fill(self) -> None:
        now = self._clock.monotonic()
        earned = (now - self._filled_at) * self._share * self._limiter.rate
        self._tokens = min(self.capacity, self._tokens + earned)
        self._filled_at = now


class ProgressLookups:
    """Looks up the progress of running builds for the engine, within a budget."""

    def __init__(
        self,
        edge: WorkflowEdge,
        *,
        limiter: CubicLimiter,
        clock: Clock,
        share: float,
        rng: random.Random,
        head_start: bool = False,
        counted: Callable[[str], None] | None = None,
    ) -> None:
        """`head_start`: the budget starts with one look-up's worth (a one-shot wait,
        whose few builds should show their step from the first poll), else empty.
        `counted` hears each look-up's outcome: done, skipped or failed (a metric)."""
        self._counted = counted or (lambda _outcome: None)
        self._edge = edge
        self._limiter = limiter
        self._clock = clock
        self._rng = rng
        self.budget = LookupBudget(share, limiter, clock, initial=2.0 if head_start else 0.0)
        self._warned: set[tuple[str, str]] = set()
        self._paused_until = -math.inf

    async def refresh(
        self, build_arn: str, status: ImageStatus, shown: BuildProgress | None
    ) -> BuildProgress | None:
        """The progress to show for a build just polled in `status`, given the one
        `shown` so far: looked up again when the budget allows, else `shown` while
        it still belongs to this status's workflow; None where no workflow runs."""
        workflow = WORKFLOW_OF_STATUS.get(status)
        if workflow is None:
            return None
        current = shown if shown is not None and shown.workflow == workflow else None
        # Known workflow execution: one call (its steps); else two (find it first).
        if self._clock.monotonic() < self._paused_until or not self.budget.allows(
            1 if current is not None else 2
        ):
            self._counted("skipped")
            return current
        try:
            found = await self._look_up(build_arn, workflow, current)
        except FinalError as exc:
            if isinstance(exc, AccessDenied | BadCredentials):
                self._paused_until = self._clock.monotonic() + DENIED_PAUSE
            self._warn(build_arn, exc)
            self._counted("failed")
            return None
        except RetryableError as exc:
            self._warn(build_arn, exc)
            self._counted("failed")
            return current
        self._counted("done")
        return found

    async def _look_up(
        self, build_arn: str, workflow: str, current: BuildProgress | None
    ) -> BuildProgress | None:
        if current is not None:
            found = await self._running_step(build_arn, current.workflow_execution_id)
            if found is not None:
                return _progress(current, *found, observed_at=self._clock.now())
            # That execution runs no step any more (it ended, or a retry replaced
            # it): find the running one again, when the budget allows.
            if not self.budget.allows(2):
                return None
        execution = await self._running_workflow(build_arn, workflow)
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
            observed_at=self._clock.now(),
        )
        found = await self._running_step(build_arn, execution.execution_id)
        return base if found is None else _progress(base, *found, observed_at=base.observed_at)

    async def _running_workflow(self, build_arn: str, workflow: str) -> WorkflowExecution | None:
        found: WorkflowExecution | None = None
        token: str | None = None
        for _ in range(_MAX_PAGES):
            items, token = await self._call(
                partial(self._edge.list_workflow_executions, build_arn, next_token=token)
            )
            running = [w for w in items if w.status == "RUNNING" and w.type in (None, workflow)]
            found = running[-1] if running else found
            if not token:
                break
        return found

    async def _running_step(
        self, build_arn: str, execution_id: str
    ) -> tuple[int, StepExecution] | None:
        """The running step of a workflow execution and its number."""
        listed = 0
        found: tuple[int, StepExecution] | None = None
        token: str | None = None
        for _ in range(_MAX_PAGES):
            items, token = await self._call(
                partial(
                    self._edge.list_workflow_step_executions,
                    build_arn,
                    execution_id,
                    next_token=token,
                )
            )
            for index, step in enumerate(items, start=listed + 1):
                if step.status == "RUNNING":
                    found = (index, step)
            listed += len(items)
            if not token:
                break
        return found

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        self.budget.charge()
        return await call_with_retry(
            fn, limiter=self._limiter, clock=self._clock, policy=_ONE_ATTEMPT, rng=self._rng
        )

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
        log.warning(
            "image.progress_unavailable",
            arn=build_arn,
            error=type(exc).__name__,
            code=exc.code,
            message=str(exc),
            note=note,
        )


def _progress(
    base: BuildProgress, number: int, step: StepExecution, *, observed_at: datetime
) -> BuildProgress:
    return base.model_copy(
        update={
            "step": number,
            "step_name": step.name,
            "action": step.action,
            "step_started_at": step.started_at,
            "observed_at": observed_at,
        }
    )


def _workflow_name(workflow_arn: str | None) -> str | None:
    """`test-image` of `...:workflow/test/test-image/1.0.2/1` (WorkflowBuildVersionArn)."""
    if workflow_arn is None:
        return None
    parts = workflow_arn.partition(":workflow/")[2].split("/")
    return parts[1] if len(parts) >= 2 and parts[1] else None
